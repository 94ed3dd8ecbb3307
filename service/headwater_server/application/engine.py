"""The operations an SDK engine sends over its one stream (``EngineService.Connect``).

Each is the very application operation its unary RPC runs, so validation, storage and event
publication are the same whichever way a request arrives. The ordering key says which
operations must apply one after the other in arrival order (those about the same run); the
stream runs the rest concurrently. A barrier operation (a flow run's state proposal) waits for
every operation received before it on the stream, so when a flow run's final state is accepted,
the task run proposals the engine sent before it without waiting for their answers are stored.
:mod:`headwater_server.servicers.engine` owns the stream itself: reading, ordering, answering and
shutdown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from headwater.v1 import states_pb2

from headwater_server.application import flow_runs, logs, task_runs
from headwater_server.application.backend import Backend, Operation

__all__ = ["OPERATIONS", "EngineOperation", "LeanOperation"]


@dataclass(frozen=True)
class LeanOperation:
    """How the stream may run an operation the cheap way: validated, then one call queued on
    the database thread and answered from its completion, with no asyncio task in between.

    Only for requests that need nothing after their transaction: no hold for a concurrency
    slot and no ownership write (see ``takes``). Where the database thread runs calls in the
    order queued (SQLite), queueing is the ordering: a later operation on the same run, or a
    flow run's final state, is stored after it.
    """

    takes: Callable[[Any, bool], bool]
    """Whether ``(request, owned)`` may take this way (``owned``: the stream names its
    engine); anything else takes the general one."""
    check: Callable[[Any], None]
    """Validates the request (the same checks as the general way)."""
    store: Callable[[Any], Callable[..., Any]]
    """The repository method (given the repository) that stores and answers the request; it
    takes ``replayable=False`` for a request that cannot arrive again (`DirectLane`)."""
    stored: Callable[[Backend], None] | None = None
    """Run on the loop after a successful answer (metrics)."""


@dataclass(frozen=True)
class EngineOperation:
    """One kind of engine operation: what runs it and what it must be ordered behind."""

    run: Operation[Any, Any]
    """The application operation (the same one the unary RPC calls)."""
    ordering_key: Callable[[Any], str | None]
    """The key of the request's run (operations with one key run in order), or None."""
    barrier: bool = False
    """Wait for every operation received before this one on the stream, whatever its run."""
    run_owned: Callable[..., Awaitable[Any]] | None = None
    """`run` with ``engine_id=``: the run it creates is owned by that engine from the same
    transaction (a separate ownership write cost every flow call a transaction)."""
    lean: LeanOperation | None = None
    """The cheap way for the common requests of this kind, where the database allows it."""


def _create_is_lean(request: Any, owned: bool) -> bool:
    # A start with tags may wait for a tag's slot (held before answering); a started run
    # outside any flow is owned by the stream's engine (a write after the create).
    if request.start and request.tags:
        return False
    return bool(request.flow_run_id) or not owned


def _proposal_is_lean(request: Any, owned: bool) -> bool:
    # Only RUNNING may wait for a slot or make the engine an owner: ends and the rest are lean.
    return bool(request.state.type != states_pb2.STATE_TYPE_RUNNING)


def _no_key(request: Any) -> str | None:
    return None


def _task_run_key(request: Any) -> str | None:
    """A task run's key: a create that names its id is ordered before what follows for it.

    With a client-chosen id the engine can send a task's start and its end back to back; on a
    database that runs operations in parallel (PostgreSQL) the end must still wait for the
    create. Lower case, so that two spellings of one id that differ only in case agree.
    """
    task_run_id: str = request.task_run_id
    return f"task_run:{task_run_id.lower()}" if task_run_id else None


def _logs_key(request: Any) -> str | None:
    if not request.logs:
        return None
    first = request.logs[0]
    if first.flow_run_id:
        return f"logs:{first.flow_run_id}"
    # A task run outside any flow has no flow run state to act as a barrier: its lines take its
    # state proposals' key, so the engine's flush before its final state is applied first.
    return f"task_run:{first.task_run_id}"


# Operation name (the ConnectRequest/ConnectResponse oneof field) -> how to run it.
OPERATIONS: dict[str, EngineOperation] = {
    "create_flow_run": EngineOperation(
        flow_runs.create_flow_run, _no_key, run_owned=flow_runs.create_flow_run
    ),
    "set_flow_run_state": EngineOperation(
        flow_runs.set_flow_run_state, lambda r: f"flow_run:{r.flow_run_id}", barrier=True
    ),
    "get_flow_run": EngineOperation(flow_runs.get_flow_run, lambda r: f"flow_run:{r.flow_run_id}"),
    "create_task_run": EngineOperation(
        task_runs.create_task_run,
        _task_run_key,
        lean=LeanOperation(
            _create_is_lean,
            task_runs.check_create_task_run,
            attrgetter("create_task_run"),
            task_runs.task_runs_created,
        ),
    ),
    "set_task_run_state": EngineOperation(
        task_runs.set_task_run_state,
        _task_run_key,
        lean=LeanOperation(
            _proposal_is_lean,
            task_runs.check_set_task_run_state,
            attrgetter("set_task_run_state"),
        ),
    ),
    "create_logs": EngineOperation(logs.create_logs, _logs_key),
}

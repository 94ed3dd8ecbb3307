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
from typing import Any

from headwater_server.application import flow_runs, logs, task_runs
from headwater_server.application.backend import Operation

__all__ = ["OPERATIONS", "EngineOperation"]


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
    "create_task_run": EngineOperation(task_runs.create_task_run, _task_run_key),
    "set_task_run_state": EngineOperation(task_runs.set_task_run_state, _task_run_key),
    "create_logs": EngineOperation(logs.create_logs, _logs_key),
}

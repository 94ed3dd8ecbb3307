"""One task call, described so that it can run anywhere: this thread, a worker, another process.

A `TaskCall` (defined in `headwater._engine.task_call`, re-exported here) is decided on the
submitting side, where the flow run is current: the task run's id (so a future knows it at
once), its ``dynamic_key`` (from the flow run's counter, in submission order, so keys are
deterministic), the flow run it belongs to, the flow's parameters (for ``FLOW_PARAMETERS``
cache policies), the tags of the enclosing `tags` blocks and whether prints are logged.
`run_task_call` runs it in the current process and reports every state to the service
itself; a process or Dask runner ships the call (it pickles with cloudpickle: it holds the
task) and calls `run_task_call` on the other side with a transport opened there.

Upstream futures in the parameters or ``wait_for`` are resolved before the run starts: each is
waited for and replaced by its result. When one did not complete (and is not wrapped in
`allow_failure`), the run is created and ended FAILED ("NotReady") without calling the
function, and its result raises `UpstreamTaskError` naming that upstream run. Futures cannot
travel to another process, so a runner that ships calls resolves them first
(`resolve_upstream` on the submitting side); the result is a call with plain values.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from headwater._context import _current_flow_run
from headwater._engine.entry import drive
from headwater._engine.task_call import (
    NOT_READY,
    TaskCall,
    UpstreamFailure,
    has_upstream,
    new_call,
    resolve_upstream,
)
from headwater._engine.tasks import TaskEngine

if TYPE_CHECKING:
    from collections.abc import Iterable

    from headwater._engine.machine import ReturnType
    from headwater._engine.runnable import TaskRunnable
    from headwater._states import State
    from headwater._transport.interface import Transport

__all__ = [
    "NOT_READY",
    "TaskCall",
    "UpstreamFailure",
    "has_upstream",
    "new_call",
    "resolve_upstream",
    "run_call",
    "run_task",
    "run_task_call",
]


def run_task(
    task: TaskRunnable,
    parameters: dict[str, Any],
    *,
    transport: Transport,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
) -> Any:
    """Run one task call here and now, on the same state machine and drivers as flows.

    Inside a flow run the task run belongs to it; outside any, it is tracked on its own.
    Futures and states among the parameters resolve to their results first; ``wait_for``
    futures must end first. Returns and raises as `headwater._engine.entry.run` does
    (``TaskRunTimeoutError`` for a timed-out attempt, `UpstreamTaskError` when an upstream
    run did not complete).
    """
    return run_call(
        new_call(task, parameters, wait_for), transport=transport, return_type=return_type
    )


def run_call(call: TaskCall, *, transport: Transport, return_type: ReturnType = "result") -> Any:
    """Run a task call described beforehand; returns what `run_task` returns."""
    return drive(TaskEngine(call, return_type, transport), None)


def run_task_call(call: TaskCall, *, transport: Transport | None = None) -> State[Any]:
    """Run ``call`` in this process, reporting every state to the service; return its final state.

    A failed run returns its Failed state (this never raises for it); an async task runs on an
    event loop of its own in this thread. Upstream futures in the call are waited for first.

    Args:
        call: The call to run.
        transport: Where to report. None means the current flow run's transport; outside any
            run one must be given (the engine never opens one itself): in another process,
            open it with ``headwater._transport.runtime.open_transport(address)``.

    Raises:
        TypeError: The task is a generator function (submit it as a plain call instead).
        ValueError: No transport was given and no flow run is current.
        BaseException: An interrupt (the run is reported CRASHED first), or the service could
            not be reached.
    """
    if call.task.isgenerator:
        raise TypeError(
            f"Task {call.task.name!r} is a generator function, which cannot run as a "
            "submitted task run. Call it directly inside the flow instead."
        )
    if transport is None:
        parent = _current_flow_run.get()
        transport = parent.transport if parent is not None else None
    if transport is None:
        raise ValueError(
            "run_task_call needs a transport outside a flow run: pass transport=... (for "
            "instance headwater._transport.runtime.transport_for_call(None) in this process)."
        )
    outcome = run_call(call, transport=transport, return_type="state")
    if inspect.iscoroutine(outcome):
        outcome = asyncio.run(outcome)
    state: State[Any] = outcome
    return state

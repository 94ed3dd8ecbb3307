"""The flow engine: runs a flow function and reports every state of the run to the service.

Calling a flow creates a run (PENDING), proposes RUNNING, calls the function in the caller's
thread (or awaits it), and proposes the final state: three round trips on the engine stream for
a trivial run. The service decides; the engine obeys:

- ACCEPT: carry on.
- REJECT: follow the state the service kept. After a failure that state is AwaitingRetry while
  retries remain (retries are the service's decision), so the engine proposes RUNNING named
  "Retrying" and runs the function again; a final state ends the run as the service says.
- WAIT: sleep the given delay and propose again (a retry delay, a scheduled start).
- ABORT: stop without running the code; another engine owns the run.

Hooks run on the client after the state they react to is stored; a failing hook is logged and
never changes the run's state. Interrupts (Ctrl-C, SIGTERM, an enclosing run's timeout) mark the
run CRASHED and propagate. A run cancelled through the API (CANCELLING) is noticed by a watch
that starts once the code has run for half a second; the code is interrupted like a timeout,
the run (and the subflow it was running) is reported CANCELLED, and the call raises
`CancelledRun`.

This module is the entry point only; the engine lives in small modules beside it:

- `headwater._engine_drivers`: plain sync and async flows (the order of the steps);
- `headwater._engine_generators`: sync and async generator flows;
- `headwater._engine_state`: the state machine (what each answer of the service means);
- `headwater._engine_run`: the run as the service sees it (create, propose, ship logs);
- `headwater._engine_setup`: the create request, run names, the function's arguments;
- `headwater._engine_outcomes`: the state to propose for a value, a returned state, an error;
- `headwater._engine_hooks`: state-change hooks;
- `headwater._engine_interrupts`: SIGTERM, Ctrl-C, cancellation, and the running context;
- `headwater._cancel_watch`: watching a running run for CANCELLING and interrupting its code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from headwater._engine_drivers import run_async, run_sync
from headwater._engine_generators import run_async_generator, run_generator
from headwater._engine_state import FlowRunEngine, ReturnType

if TYPE_CHECKING:
    from headwater._flows import Flow

__all__ = ["ReturnType", "run_flow"]


def run_flow(
    flow: Flow[..., Any],
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    *,
    flow_run_id: str | None = None,
) -> Any:
    """Run ``flow`` with ``parameters`` and return its result (or final state).

    Args:
        flow: The flow to run.
        parameters: The call's parameters by name (as `Flow.__call__` binds them). With
            ``flow_run_id`` and no parameters, the run's stored parameters are used.
        wait_for: Futures or states to wait for before the run starts.
        return_type: ``"result"`` returns the value or raises the flow's exception;
            ``"state"`` returns the final `State` and never raises for a failed run.
        flow_run_id: Run this existing run (created elsewhere, e.g. PENDING through the API)
            instead of creating one. If another engine runs it already, the service answers
            ABORT and this raises `Abort`.

    Returns:
        For a sync flow, the result or state. For an async flow, a coroutine of it. For a
        generator flow, a generator (sync or async) yielding what the flow yields.

    Raises:
        Abort: The service told this engine not to run the flow.
        ParameterTypeError: The parameters failed validation (the run is marked FAILED).
        FlowRunTimeoutError: The run exceeded ``timeout_seconds``.
        CancelledRun: The run was cancelled while it ran (its code was interrupted).
        TerminationSignal: The process got SIGTERM during the run (the run is CRASHED).
        BaseException: Whatever the flow raised, re-raised as the same object.
    """
    engine = FlowRunEngine(flow, parameters, return_type, flow_run_id)
    if flow.isasync:
        if flow.isgenerator:
            return run_async_generator(engine, wait_for)
        return run_async(engine, wait_for)
    if flow.isgenerator:
        return run_generator(engine, wait_for)
    return run_sync(engine, wait_for)

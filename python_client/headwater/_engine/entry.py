"""The engine's entry point: run a runnable once, reporting every state through a transport.

See the package docstring (`headwater._engine`) for how a call proceeds and where each part
lives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from headwater._engine.drivers import run_async, run_sync
from headwater._engine.generators import run_async_generator, run_generator
from headwater._engine.machine import ReturnType, RunEngine

if TYPE_CHECKING:
    from headwater._engine.runnable import Runnable
    from headwater._transport.interface import RunSnapshot, Transport

__all__ = ["ReturnType", "drive", "run"]


def run(
    runnable: Runnable,
    parameters: dict[str, Any] | None,
    *,
    transport: Transport,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    flow_run_id: str | None = None,
    known_run: RunSnapshot | None = None,
) -> Any:
    """Run ``runnable`` with ``parameters`` and return its result (or final state).

    Args:
        runnable: What to run (a `Flow`).
        parameters: The call's parameters by name (as `Flow.__call__` binds them). With
            ``flow_run_id`` and no parameters, the run's stored parameters are used.
        transport: The service to report to; subflows and run logs use the same one.
        wait_for: Futures or states to wait for before the run starts.
        return_type: ``"result"`` returns the value or raises the run's exception;
            ``"state"`` returns the final `State` and never raises for a failed run.
        flow_run_id: Run this existing run (created elsewhere, e.g. PENDING through the API)
            instead of creating one. If another engine runs it already, the service answers
            ABORT and this raises `Abort`.
        known_run: That run as the caller already read it (a runner's claim), so it is not
            read again before its first state is proposed.

    Returns:
        For a sync function, the result or state. For an async one, a coroutine of it. For a
        generator, a generator (sync or async) yielding what the function yields.

    Raises:
        Abort: The service told this engine not to run it.
        ParameterTypeError: The parameters failed validation (the run is marked FAILED).
        FlowRunTimeoutError: The run exceeded ``timeout_seconds``.
        CancelledRun: The run was cancelled while it ran (its code was interrupted).
        TerminationSignal: The process got SIGTERM during the run (the run is CRASHED).
        BaseException: Whatever the function raised, re-raised as the same object.
    """
    engine = RunEngine(runnable, parameters, return_type, flow_run_id, transport, known_run)
    return drive(engine, wait_for)


def drive(engine: RunEngine, wait_for: Iterable[Any] | None) -> Any:
    """Hand the call to the driver for its kind of function."""
    runnable = engine.flow
    if runnable.isasync:
        if runnable.isgenerator:
            return run_async_generator(engine, wait_for)
        return run_async(engine, wait_for)
    if runnable.isgenerator:
        return run_generator(engine, wait_for)
    return run_sync(engine, wait_for)

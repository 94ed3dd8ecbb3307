"""The state the engine proposes for what an attempt did: a value, a returned state, an error.

Each function returns a `Proposal`: the client-side `State` (which keeps the Python value or
exception for the caller) with what travels to the service beside it (the result as JSON or a
reference to result storage, the failure), so the engine's state machine never builds
proposals itself.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from headwater._engine.interrupts import crash_message
from headwater._results import inline_json
from headwater._settings import get_settings
from headwater._states import Cancelled, Completed, Crashed, Failed, State, StateType
from headwater._transport.interface import Proposal
from headwater.exceptions import FlowRunTimeoutError, ParameterTypeError, UpstreamTaskError

if TYPE_CHECKING:
    from headwater._engine.runnable import Runnable

__all__ = [
    "aggregate",
    "cancelled",
    "completed",
    "crashed",
    "failed",
    "not_ready",
    "parameters_failed",
    "resolve_returned_futures",
    "returned_state",
    "state_group",
    "timeout_error",
]


def completed(flow: Runnable, value: Any, parameters: dict[str, Any] | None = None) -> Proposal:
    """COMPLETED with ``value``: persisted to result storage when the flow (or settings) say so.

    A task's ``result_storage_key`` template (formatted with ``parameters``) names where; else
    the key is random.

    Raises:
        Exception: Persisting the result failed; the engine then fails the attempt with it.
    """
    persist = flow.persist_result
    if persist is None:
        persist = get_settings().results_persist_by_default
    if persist:
        from headwater._results import format_storage_key, persist_result

        key = None
        template = getattr(flow, "result_storage_key", None)  # tasks have one, flows do not
        if template:
            from headwater.runtime import flow_run, task_run

            key = format_storage_key(
                template, parameters or {}, flow_run=flow_run, task_run=task_run
            )
        reference = persist_result(value, flow.result_storage, flow.result_serializer, key=key)
        data = value if flow.cache_result_in_memory else reference
        return Proposal(Completed(data=data), result_reference=reference)
    return Proposal(Completed(data=value), result_json=inline_json(value))


def resolve_returned_futures(value: Any) -> Any:
    """``value`` with returned futures replaced by their runs' final states (as Prefect).

    Only a future, or lists, tuples, sets and dicts holding some, are touched; anything else
    is returned as it is without being looked into further.
    """
    if not isinstance(value, list | tuple | set | frozenset | dict) and not _is_future(value):
        return value
    from headwater.futures import _futures_in, resolve_futures_to_states

    if next(_futures_in(value), None) is None:
        return value
    return resolve_futures_to_states(value)


def _is_future(value: Any) -> bool:
    futures = sys.modules.get("headwater.futures")
    return futures is not None and isinstance(value, futures.TaskRunFuture)


def state_group(value: Any) -> list[State[Any]] | None:
    """The states of a returned list, tuple or set made only of states (else None)."""
    if (
        isinstance(value, list | tuple | set | frozenset)
        and value
        and all(isinstance(item, State) for item in value)
    ):
        return list(value)
    return None


def aggregate(states: list[State[Any]]) -> Proposal:
    """The state of a run that returned several states (or futures): all of them together.

    COMPLETED when all completed; otherwise CANCELLED if any was cancelled, else FAILED,
    with a message counting them. A failed aggregate carries the first failure's exception,
    so the caller gets that error.
    """
    total = len(states)
    if all(state.type is StateType.COMPLETED for state in states):
        return Proposal(Completed(data=states, message="All states completed."))
    cancelled_count = sum(state.type is StateType.CANCELLED for state in states)
    if cancelled_count:
        return Proposal(Cancelled(message=f"{cancelled_count}/{total} states cancelled."))
    bad = [state for state in states if state.type is not StateType.COMPLETED]
    if all(state.is_final() for state in bad):
        message = f"{len(bad)}/{total} states failed."
    else:
        message = f"{sum(not state.is_final() for state in bad)}/{total} states are not final."
    first = bad[0]
    error = first.result(raise_on_failure=False) if first.is_final() else None
    failure: BaseException | str = error if isinstance(error, BaseException) else message
    return Proposal(Failed(data=failure, message=message), failure=failure)


def returned_state(flow: Runnable, value: State[Any], kind: str = "flow") -> tuple[Proposal, bool]:
    """A flow that returns a State ends in that state: (proposal, may_retry).

    A returned Failed may retry like a raised exception, so a flow can fail without raising.

    Raises:
        TypeError: The returned state is not final.
    """
    state: State[Any] = State(value.type, name=value.name, message=value.message, data=value.data)
    failure: BaseException | str | None = None
    result = None
    if state.type in (StateType.FAILED, StateType.CRASHED):
        data = value.data
        failure = data if isinstance(data, BaseException) else value.message or ""
    elif state.type is StateType.COMPLETED:
        result = inline_json(value.data)
    elif not state.is_final():
        raise TypeError(
            f"{kind.capitalize()} {flow.name!r} returned a {value.name!r} state, which is not "
            f"a final state. A {kind} may return Completed, Failed, Crashed or Cancelled "
            "states, or any other value as its result."
        )
    proposal = Proposal(state, result_json=result, failure=failure)
    return proposal, state.type is StateType.FAILED


def failed(
    exc: BaseException,
    timed_out: bool,
    attempt: int,
    run_logger: logging.LoggerAdapter[logging.Logger],
    kind: str = "flow",
) -> Proposal:
    """FAILED for an exception, logged on the run's logger so the person sees the traceback.

    ``kind`` ("flow" or "task") names the run in the state's message.
    """
    if timed_out:
        message = str(exc)
        run_logger.error("%s", message)
        state = Failed(data=exc, message=message, name="TimedOut")
    else:
        message = f"{kind.capitalize()} run raised {type(exc).__name__}: {exc}"
        run_logger.error("Attempt %d raised:", attempt, exc_info=exc)
        state = Failed(data=exc, message=message)
    return Proposal(state, failure=exc)


def not_ready(exc: UpstreamTaskError) -> Proposal:
    """FAILED ("NotReady") for a task run whose upstream did not complete: it never ran."""
    from headwater._engine.task_call import NOT_READY

    return Proposal(Failed(data=exc, message=str(exc), name=NOT_READY), failure=exc)


def parameters_failed(exc: ParameterTypeError) -> Proposal:
    """FAILED for parameters that did not validate: the function never runs."""
    return Proposal(Failed(data=exc, message=f"Parameter validation failed: {exc}"), failure=exc)


def crashed(exc: BaseException) -> Proposal:
    """CRASHED for an interrupt (a signal, Ctrl-C, cancellation) or an engine error."""
    return Proposal(Crashed(data=exc, message=crash_message(exc)), failure=exc)


def cancelled(reason: str) -> Proposal:
    """CANCELLED after the run's code was interrupted; the message says who cancelled and why.

    Proposed from CANCELLING, which the service accepts; if the code had finished first, the
    engine proposes COMPLETED instead (also accepted from CANCELLING: the work is done).
    """
    return Proposal(Cancelled(message=reason))


def timeout_error(
    run_name: str, timeout_seconds: float | None, flow_name: str
) -> FlowRunTimeoutError:
    """The error a run that exceeded ``timeout_seconds`` fails with (and the caller gets)."""
    seconds = timeout_seconds or 0
    shown = f"{seconds:g}"
    return FlowRunTimeoutError(
        f"Flow run {run_name!r} exceeded timeout of {shown} second"
        f"{'' if shown == '1' else 's'} and was stopped. Make the flow faster or raise "
        f"timeout_seconds on flow {flow_name!r}."
    )

"""Run states: what a run is doing, and the result or exception it ended with.

The engine builds several states per run (Pending, Running, Completed...), so a `State` is a
plain slotted object with no validation and no imports beyond the standard library.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from headwater.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    MissingResult,
    UnfinishedRun,
)

__all__ = [
    "FINAL_STATE_TYPES",
    "AwaitingConcurrencySlot",
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Late",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateDetails",
    "StateType",
    "Suspended",
    "UnstoredResult",
]

R = TypeVar("R")

_utc = _dt.UTC
_now = _dt.datetime.now


class UnstoredResult:
    """The data of a COMPLETED state read from the service with no result stored for it.

    The service keeps a result only as inline JSON or as a reference to persisted data: a
    value that is not JSON (or too large to send inline) from a run that did not persist
    its results is known only to the process that ran it. A run that returned ``None`` has a
    stored result (JSON null), so the two are told apart: `State.result` raises
    `MissingResult` for this one, where a None would look like a real answer. Prefect raises
    the same error for a result that was not persisted.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "UnstoredResult()"


#: The one `UnstoredResult`: the data of every state whose result the service does not hold.
UNSTORED_RESULT = UnstoredResult()

#: Why `State.result` has nothing to give for an `UnstoredResult`, and what to do about it.
_UNSTORED_MESSAGE = (
    "The run completed, but its result was not stored: it is not JSON (or is too large to "
    "send inline) and the run did not persist its results, so only the process that ran it "
    "had the value. Set persist_result=True (or a result_storage) on the flow or task to read "
    "such results from another process."
)


class StateType(StrEnum):
    """The kind of a state; the service's orchestration rules work on these."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CANCELLING = "CANCELLING"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"


#: The state types a run ends in: once in one, the run never changes again, a watch of it
#: ends and its result (or exception) is known. `State.is_final` tests against this set; the
#: service's orchestration rules define the same set for themselves.
FINAL_STATE_TYPES: frozenset[StateType] = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)


class State(Generic[R]):
    """One state of a run.

    Attributes:
        type: The kind of state.
        name: A display name; named states (``"Late"``, ``"Retrying"``) refine a type.
        message: Why the run is in this state, for people.
        timestamp: When the state was created (timezone-aware UTC).
        id: The service's id for this state, once the service has accepted it.
        data: The in-memory result (COMPLETED), the exception (FAILED/CRASHED), or a
            `headwater._results.ResultReference` when the result was persisted.
        scheduled_time: When a SCHEDULED (or PAUSED) run should resume.
        state_details: Which run the state belongs to (`StateDetails`), as Prefect's
            ``state.state_details.flow_run_id`` says.
    """

    __slots__ = (
        "_flow_run_id",
        "_task_run_id",
        "data",
        "id",
        "message",
        "name",
        "scheduled_time",
        "timestamp",
        "type",
    )

    def __init__(
        self,
        type: StateType,
        name: str | None = None,
        message: str | None = None,
        timestamp: _dt.datetime | None = None,
        id: str | None = None,
        data: Any = None,
        scheduled_time: _dt.datetime | None = None,
    ) -> None:
        # The engine passes a StateType already; converting (a str) only when needed is
        # cheaper than the enum call, and states are made several times per run.
        self.type = type if type.__class__ is StateType else StateType(type)
        self.name = name if name is not None else self.type.value.title()
        self.message = message
        self.timestamp = timestamp if timestamp is not None else _now(_utc)
        self.id = id
        self.data = data
        self.scheduled_time = scheduled_time

    def is_scheduled(self) -> bool:
        """True when the run waits for its scheduled time (includes Late and AwaitingRetry)."""
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        """True when the run is about to start."""
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        """True while the run executes (includes Retrying)."""
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        """True when the run returned normally."""
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        """True when the run raised (or returned a failed state)."""
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        """True when infrastructure, a signal or a lost process ended the run."""
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        """True when the run was cancelled."""
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        """True while a cancellation has been asked for and not yet carried out."""
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        """True when the run is paused (includes Suspended)."""
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        """True for states a run never leaves: COMPLETED, FAILED, CRASHED, CANCELLED."""
        return self.type in FINAL_STATE_TYPES

    def result(self, raise_on_failure: bool = True) -> R | BaseException:
        """Return the run's result, or raise what made it fail.

        Args:
            raise_on_failure: When False, a failed, crashed or cancelled state returns its
                exception instead of raising it, so callers can inspect it.

        Returns:
            The value a COMPLETED run returned (read back from result storage when it was
            persisted), or with ``raise_on_failure=False`` the exception of a failed run.

        Raises:
            UnfinishedRun: The state is not final, so there is no result yet.
            FailedRun: A FAILED state that stored no exception of its own.
            CrashedRun: A CRASHED state.
            CancelledRun: A CANCELLED state.
            MissingResult: The result was persisted but can no longer be read.
            Exception: The exception a FAILED run raised.
        """
        if self.type is StateType.COMPLETED:
            return self._load_data()  # type: ignore[no-any-return]
        if self.type not in FINAL_STATE_TYPES:
            shown = (
                self.name
                if self.name.upper() == self.type.value
                else f"{self.name} ({self.type.value})"
            )
            raise UnfinishedRun(
                f"The run is in state {shown}, so it has no result "
                "yet. Wait until it reaches a final state (completed, failed, crashed or "
                "cancelled) before asking for its result."
            )
        exc = self._exception()
        if raise_on_failure:
            raise exc
        return exc

    def _load_data(self) -> Any:
        """The state's data, reading it from result storage when it is a reference.

        Raises:
            MissingResult: The service holds no result for it (`UnstoredResult`), or the
                persisted result can no longer be read.
        """
        data = self.data
        if data is UNSTORED_RESULT:
            raise MissingResult(_UNSTORED_MESSAGE)
        if type(data).__name__ == "ResultReference":
            from headwater._results import ResultReference, load_result

            if isinstance(data, ResultReference):
                return load_result(data)
        return data

    def _exception(self) -> BaseException:
        """The exception a failed, crashed or cancelled state stands for."""
        try:
            data = self._load_data()
        except MissingResult as exc:
            data = exc
        if self.type is StateType.FAILED:
            if isinstance(data, BaseException):
                return data
            return FailedRun(
                self.message or (data if isinstance(data, str) else None) or "The run failed."
            )
        wrapper: type[Exception]
        if self.type is StateType.CRASHED:
            wrapper, default = CrashedRun, "The run crashed."
        else:
            wrapper, default = CancelledRun, "The run was cancelled."
        if isinstance(data, wrapper):
            return data
        error = wrapper(self.message or (data if isinstance(data, str) else None) or default)
        if isinstance(data, BaseException):
            # Keep what actually happened (a signal, a lost heartbeat) visible in tracebacks.
            error.__cause__ = data
        return error

    @property
    def state_details(self) -> StateDetails:
        """Which run this state belongs to, and when a scheduled one resumes.

        States the engine hands out (``return_state=True``, a future's ``state``, hooks) and
        states read through the client know their run; a state made in code (``Completed()``)
        knows none until a run takes it.
        """
        return StateDetails(
            flow_run_id=getattr(self, "_flow_run_id", None),
            task_run_id=getattr(self, "_task_run_id", None),
            scheduled_time=self.scheduled_time,
        )

    def _belongs_to(self, flow_run_id: str | None, task_run_id: str | None = None) -> State[R]:
        """Record the run this state is of (see `state_details`); returns the state itself."""
        self._flow_run_id = flow_run_id or None
        self._task_run_id = task_run_id or None
        return self

    def __repr__(self) -> str:
        parts = [f"type={self.type.value}"]
        if self.message is not None:
            parts.append(f"message={self.message!r}")
        if self.data is not None:
            parts.append(f"data={_short(self.data)}")
        return f"{self.name}({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return all(getattr(self, slot) == getattr(other, slot) for slot in _COMPARED)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            State,
            (
                self.type,
                self.name,
                self.message,
                self.timestamp,
                self.id,
                self.data,
                self.scheduled_time,
            ),
            (
                None,
                {
                    "_flow_run_id": getattr(self, "_flow_run_id", None),
                    "_task_run_id": getattr(self, "_task_run_id", None),
                },
            ),
        )


#: What two states are equal by: what they say, not which run holds them.
_COMPARED = ("data", "id", "message", "name", "scheduled_time", "timestamp", "type")


@dataclass(frozen=True, slots=True)
class StateDetails:
    """Which run a state belongs to (Prefect's `StateDetails`, with the fields that apply).

    Attributes:
        flow_run_id: The flow run the state is of, or the flow run of its task run.
        task_run_id: The task run the state is of, for a task run's state.
        scheduled_time: When a SCHEDULED (or PAUSED) run should resume.
    """

    flow_run_id: str | None = None
    task_run_id: str | None = None
    scheduled_time: _dt.datetime | None = None


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def Scheduled(
    *,
    scheduled_time: _dt.datetime | None = None,
    name: str = "Scheduled",
    message: str | None = None,
    data: Any = None,
    id: str | None = None,
) -> State[Any]:
    """A run waiting for ``scheduled_time`` (now when not given)."""
    return State(
        StateType.SCHEDULED,
        name=name,
        message=message,
        data=data,
        id=id,
        scheduled_time=scheduled_time if scheduled_time is not None else _now(_utc),
    )


def Pending(
    *, name: str = "Pending", message: str | None = None, data: Any = None, id: str | None = None
) -> State[Any]:
    """A run about to start."""
    return State(StateType.PENDING, name=name, message=message, data=data, id=id)


def Running(
    *, name: str = "Running", message: str | None = None, data: Any = None, id: str | None = None
) -> State[Any]:
    """A run that is executing."""
    return State(StateType.RUNNING, name=name, message=message, data=data, id=id)


def Completed(
    *,
    data: Any = None,
    name: str = "Completed",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A run that returned ``data`` (a value or a `ResultReference`)."""
    return State(StateType.COMPLETED, name=name, message=message, data=data, id=id)


def Failed(
    *,
    data: Any = None,
    name: str = "Failed",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A run that raised; ``data`` is usually the exception."""
    return State(StateType.FAILED, name=name, message=message, data=data, id=id)


def Crashed(
    *,
    data: Any = None,
    name: str = "Crashed",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A run ended by infrastructure, a signal or a lost process."""
    return State(StateType.CRASHED, name=name, message=message, data=data, id=id)


def Cancelled(
    *,
    data: Any = None,
    name: str = "Cancelled",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A run that was cancelled."""
    return State(StateType.CANCELLED, name=name, message=message, data=data, id=id)


def Cancelling(
    *,
    data: Any = None,
    name: str = "Cancelling",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A run asked to cancel that has not stopped yet."""
    return State(StateType.CANCELLING, name=name, message=message, data=data, id=id)


def Paused(
    *,
    timeout_seconds: float | None = None,
    pause_expiration_time: _dt.datetime | None = None,
    name: str = "Paused",
    message: str | None = None,
    data: Any = None,
    id: str | None = None,
) -> State[Any]:
    """A paused run; it resumes by ``pause_expiration_time`` (or after ``timeout_seconds``).

    Raises:
        ValueError: Both ``timeout_seconds`` and ``pause_expiration_time`` were given.
    """
    if timeout_seconds is not None and pause_expiration_time is not None:
        raise ValueError(
            "Give either timeout_seconds or pause_expiration_time to Paused(), not both: "
            "they both say when the pause ends."
        )
    if timeout_seconds is not None:
        pause_expiration_time = _now(_utc) + _dt.timedelta(seconds=timeout_seconds)
    return State(
        StateType.PAUSED,
        name=name,
        message=message,
        data=data,
        id=id,
        scheduled_time=pause_expiration_time,
    )


def Late(
    *,
    scheduled_time: _dt.datetime | None = None,
    name: str = "Late",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A SCHEDULED run whose time has passed without it starting."""
    return Scheduled(scheduled_time=scheduled_time, name=name, message=message, id=id)


def AwaitingRetry(
    *,
    scheduled_time: _dt.datetime | None = None,
    name: str = "AwaitingRetry",
    message: str | None = None,
    data: Any = None,
    id: str | None = None,
) -> State[Any]:
    """A SCHEDULED run waiting for its retry delay to pass."""
    return Scheduled(scheduled_time=scheduled_time, name=name, message=message, data=data, id=id)


def AwaitingConcurrencySlot(
    *,
    scheduled_time: _dt.datetime | None = None,
    name: str = "AwaitingConcurrencySlot",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A SCHEDULED run waiting for a concurrency limit to free a slot."""
    return Scheduled(scheduled_time=scheduled_time, name=name, message=message, id=id)


def Retrying(
    *, name: str = "Retrying", message: str | None = None, id: str | None = None
) -> State[Any]:
    """A RUNNING run on a retry attempt."""
    return Running(name=name, message=message, id=id)


def Cached(
    *,
    data: Any = None,
    name: str = "Cached",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A COMPLETED run whose result came from the cache."""
    return Completed(data=data, name=name, message=message, id=id)


def Suspended(
    *,
    timeout_seconds: float | None = None,
    pause_expiration_time: _dt.datetime | None = None,
    name: str = "Suspended",
    message: str | None = None,
    id: str | None = None,
) -> State[Any]:
    """A PAUSED run whose process has exited; it resumes in a new process."""
    return Paused(
        timeout_seconds=timeout_seconds,
        pause_expiration_time=pause_expiration_time,
        name=name,
        message=message,
        id=id,
    )

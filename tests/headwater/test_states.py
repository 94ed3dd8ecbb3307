"""States: their kinds, names, predicates, and `State.result` semantics (Prefect's)."""

from __future__ import annotations

import datetime
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from headwater import (
    AwaitingConcurrencySlot,
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    Suspended,
)
from headwater._results import ResultReference, persist_result
from headwater.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    MissingResult,
    TerminationSignal,
    UnfinishedRun,
)

CONSTRUCTORS: list[tuple[Callable[..., State[Any]], StateType, str]] = [
    (Scheduled, StateType.SCHEDULED, "Scheduled"),
    (Pending, StateType.PENDING, "Pending"),
    (Running, StateType.RUNNING, "Running"),
    (Completed, StateType.COMPLETED, "Completed"),
    (Failed, StateType.FAILED, "Failed"),
    (Crashed, StateType.CRASHED, "Crashed"),
    (Cancelled, StateType.CANCELLED, "Cancelled"),
    (Cancelling, StateType.CANCELLING, "Cancelling"),
    (Paused, StateType.PAUSED, "Paused"),
    (Late, StateType.SCHEDULED, "Late"),
    (AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
    (Retrying, StateType.RUNNING, "Retrying"),
    (Cached, StateType.COMPLETED, "Cached"),
    (AwaitingConcurrencySlot, StateType.SCHEDULED, "AwaitingConcurrencySlot"),
    (Suspended, StateType.PAUSED, "Suspended"),
]

PREDICATES = {
    StateType.SCHEDULED: "is_scheduled",
    StateType.PENDING: "is_pending",
    StateType.RUNNING: "is_running",
    StateType.COMPLETED: "is_completed",
    StateType.FAILED: "is_failed",
    StateType.CRASHED: "is_crashed",
    StateType.CANCELLED: "is_cancelled",
    StateType.CANCELLING: "is_cancelling",
    StateType.PAUSED: "is_paused",
}

FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


def test_state_types() -> None:
    assert [t.value for t in StateType] == [
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "CANCELLING",
        "CRASHED",
        "PAUSED",
    ]
    assert StateType("RUNNING") is StateType.RUNNING
    assert StateType.RUNNING == "RUNNING"
    assert str(StateType.RUNNING) == "RUNNING"


@pytest.mark.parametrize(("constructor", "state_type", "name"), CONSTRUCTORS)
def test_constructors_give_prefect_names_and_types(
    constructor: Callable[..., State[Any]], state_type: StateType, name: str
) -> None:
    state = constructor()
    assert state.type is state_type
    assert state.name == name
    assert state.message is None
    assert state.id is None
    assert state.timestamp.tzinfo is not None
    assert state.timestamp.utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize(("constructor", "state_type", "name"), CONSTRUCTORS)
def test_exactly_one_predicate_holds(
    constructor: Callable[..., State[Any]], state_type: StateType, name: str
) -> None:
    state = constructor()
    holding = [method for method in PREDICATES.values() if getattr(state, method)()]
    assert holding == [PREDICATES[state_type]]
    assert state.is_final() is (state_type in FINAL)


def test_state_defaults_its_name_from_its_type() -> None:
    assert State(StateType.CANCELLING).name == "Cancelling"
    assert State("COMPLETED").type is StateType.COMPLETED  # type: ignore[arg-type]


def test_scheduled_states_default_to_now() -> None:
    before = datetime.datetime.now(datetime.UTC)
    for constructor in (Scheduled, Late, AwaitingRetry, AwaitingConcurrencySlot):
        scheduled_time = constructor().scheduled_time
        assert scheduled_time is not None and scheduled_time >= before


def test_scheduled_time_given() -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert Scheduled(scheduled_time=when).scheduled_time == when
    assert AwaitingRetry(scheduled_time=when).scheduled_time == when


def test_paused_with_timeout_sets_expiration() -> None:
    before = datetime.datetime.now(datetime.UTC)
    state = Paused(timeout_seconds=60)
    assert state.scheduled_time is not None
    assert state.scheduled_time >= before + datetime.timedelta(seconds=60)
    assert Suspended(timeout_seconds=1).scheduled_time is not None
    assert Paused().scheduled_time is None


def test_paused_refuses_both_timeout_and_expiration() -> None:
    with pytest.raises(ValueError, match="not both"):
        Paused(timeout_seconds=1, pause_expiration_time=datetime.datetime.now(datetime.UTC))


class TestResult:
    def test_completed_returns_value(self) -> None:
        assert Completed(data={"a": 1}).result() == {"a": 1}
        assert Cached(data=3).result() == 3
        assert Completed().result() is None

    def test_completed_loads_persisted_reference(self, tmp_path: Path) -> None:
        reference = persist_result([1, 2], storage=str(tmp_path), serializer="json")
        assert Completed(data=reference).result() == [1, 2]

    def test_missing_persisted_result(self, tmp_path: Path) -> None:
        reference = ResultReference(storage_key=str(tmp_path / "gone"), serializer="pickle")
        with pytest.raises(MissingResult, match="no longer exists"):
            Completed(data=reference).result()

    def test_failed_raises_stored_exception(self) -> None:
        error = ValueError("boom")
        with pytest.raises(ValueError, match="boom") as info:
            Failed(data=error).result()
        assert info.value is error

    def test_failed_returns_exception_when_asked(self) -> None:
        error = ValueError("boom")
        assert Failed(data=error).result(raise_on_failure=False) is error

    def test_failed_without_exception_raises_failed_run(self) -> None:
        with pytest.raises(FailedRun, match="it went wrong"):
            Failed(message="it went wrong").result()
        with pytest.raises(FailedRun, match=r"The run failed\."):
            Failed().result()

    def test_failed_loads_persisted_exception(self, tmp_path: Path) -> None:
        reference = persist_result(KeyError("k"), storage=str(tmp_path), serializer="pickle")
        with pytest.raises(KeyError):
            Failed(data=reference).result()

    def test_crashed_raises_crashed_run_caused_by_the_signal(self) -> None:
        signal = TerminationSignal(15)
        with pytest.raises(CrashedRun, match="killed") as info:
            Crashed(message="killed", data=signal).result()
        assert info.value.__cause__ is signal

    def test_crashed_without_message(self) -> None:
        with pytest.raises(CrashedRun, match=r"The run crashed\."):
            Crashed().result()

    def test_cancelled_raises_cancelled_run(self) -> None:
        with pytest.raises(CancelledRun, match="stopped by user"):
            Cancelled(message="stopped by user").result()

    def test_raise_on_failure_false_returns_wrappers(self) -> None:
        assert isinstance(Crashed().result(raise_on_failure=False), CrashedRun)
        assert isinstance(Cancelled().result(raise_on_failure=False), CancelledRun)
        assert isinstance(Failed().result(raise_on_failure=False), FailedRun)

    @pytest.mark.parametrize(
        "constructor",
        [Scheduled, Pending, Running, Cancelling, Paused, Late, AwaitingRetry, Retrying, Suspended],
    )
    def test_unfinished_states_raise_unfinished_run(
        self, constructor: Callable[..., State[Any]]
    ) -> None:
        state = constructor()
        with pytest.raises(UnfinishedRun, match="has no result yet") as caught:
            state.result()
        # The type is named only when the name differs: "Late (SCHEDULED)", never
        # "Running (RUNNING)".
        if state.name.upper() == state.type.value:
            assert f"in state {state.name}, so" in str(caught.value)
        else:
            assert f"in state {state.name} ({state.type.value}), so" in str(caught.value)
        with pytest.raises(UnfinishedRun):
            constructor().result(raise_on_failure=False)


def test_states_pickle_with_their_data() -> None:
    state = Failed(message="m", data=ValueError("x"), id="abc")
    restored = pickle.loads(pickle.dumps(state))
    assert (restored.type, restored.name, restored.message, restored.id) == (
        StateType.FAILED,
        "Failed",
        "m",
        "abc",
    )
    assert restored.timestamp == state.timestamp
    assert isinstance(restored.data, ValueError)


def test_equality_and_repr() -> None:
    stamp = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    first = State(StateType.COMPLETED, data=1, timestamp=stamp)
    second = State(StateType.COMPLETED, data=1, timestamp=stamp)
    assert first == second
    assert first != State(StateType.COMPLETED, data=2, timestamp=stamp)
    assert (
        repr(Completed(data=1, message="ok")) == "Completed(type=COMPLETED, message='ok', data=1)"
    )
    assert repr(Late()).startswith("Late(type=SCHEDULED")


def test_states_are_slotted() -> None:
    with pytest.raises(AttributeError):
        Completed().unknown = 1  # type: ignore[attr-defined]

"""`headwater.futures`: futures of submitted task runs, `wait`, `as_completed`, resolving.

Runs are real task runs on the embedded service. Tasks that must still be running when the
test looks are held on a `threading.Event`, so every "not done yet" is certain, not timed.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from engine_support import Reader, unique
from headwater import State, StateType, flow, task
from headwater.futures import (
    PrefectFuture,
    PrefectFutureList,
    TaskRunFuture,
    as_completed,
    resolve_futures_to_results,
    resolve_futures_to_states,
    wait,
)
from headwater.task_runners import ThreadPoolTaskRunner


class Gate:
    """Holds task runs until released (each release lets every held run go)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def release(self) -> None:
        self.event.set()


@task
def echo(value: Any) -> Any:
    return value


@task
def broken(message: str) -> None:
    raise ValueError(message)


@task
def held(gate: Gate, value: Any) -> Any:
    gate.event.wait(30)
    return value


def test_prefect_future_is_the_same_class() -> None:
    assert PrefectFuture is TaskRunFuture


def test_result_state_and_done(reader: Reader) -> None:
    gate = Gate()

    @flow(name=unique())
    def pipeline() -> None:
        future = held.submit(gate, "value")
        assert not future.done()
        assert not future.state.is_final()
        future.wait(timeout=0.05)  # returns without an error when the run is not done
        assert not future.done()
        with pytest.raises(TimeoutError, match=future.task_run_id):
            future.result(timeout=0.05)
        gate.release()
        assert future.result() == "value"
        assert future.done()
        assert future.state.type is StateType.COMPLETED

    pipeline()


def test_result_raise_on_failure(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> None:
        future = broken.submit("bad")
        with pytest.raises(ValueError, match="bad"):
            future.result()
        error = future.result(raise_on_failure=False)
        assert isinstance(error, ValueError) and str(error) == "bad"
        assert future.state.is_failed()

    pipeline()


def test_add_done_callback_runs_once_done_and_at_once_when_already_done(reader: Reader) -> None:
    gate = Gate()
    calls: list[tuple[str, Any]] = []

    @flow(name=unique())
    def pipeline() -> None:
        future = held.submit(gate, 1)
        future.add_done_callback(lambda done: calls.append(("late", done.state.result())))
        assert calls == []
        gate.release()
        future.wait()
        future.add_done_callback(lambda done: calls.append(("now", done is future)))

    pipeline()
    assert sorted(calls, key=str) == [("late", 1), ("now", True)]


def test_wait_with_timeout_splits_done_and_not_done(reader: Reader) -> None:
    gate = Gate()

    @flow(name=unique())
    def pipeline() -> None:
        quick = echo.submit(1)
        quick.wait()
        slow = held.submit(gate, 2)
        done, not_done = wait([quick, slow, quick], timeout=0.05)
        assert done == {quick} and not_done == {slow}
        gate.release()
        done, not_done = wait([quick, slow])
        assert done == {quick, slow} and not_done == set()

    pipeline()


def test_as_completed_yields_in_completion_order_and_times_out(reader: Reader) -> None:
    first, second = Gate(), Gate()

    @flow(name=unique())
    def pipeline() -> list[Any]:
        finished = echo.submit("already")
        finished.wait()
        later = held.submit(second, "second")
        sooner = held.submit(first, "first")
        seen: list[Any] = []
        iterator = as_completed([later, sooner, finished, finished])
        seen.append(next(iterator).result())
        first.release()
        seen.append(next(iterator).result())
        second.release()
        seen.extend(future.result() for future in iterator)
        return seen

    assert pipeline() == ["already", "first", "second"]


def test_as_completed_timeout_names_the_unfinished(reader: Reader) -> None:
    gate = Gate()

    @flow(name=unique())
    def pipeline() -> None:
        futures = [echo.submit(0), held.submit(gate, 1), held.submit(gate, 2)]
        futures[0].wait()
        yielded = []
        with pytest.raises(TimeoutError, match=r"2 \(of 3\) futures unfinished"):
            for future in as_completed(futures, timeout=0.05):
                yielded.append(future)
        assert yielded == [futures[0]]
        gate.release()

    pipeline()


def test_future_list_result_and_timeout(reader: Reader) -> None:
    gate = Gate()

    @flow(name=unique())
    def pipeline() -> None:
        futures = held.map(gate, [1, 2, 3])
        assert isinstance(futures, PrefectFutureList)
        with pytest.raises(TimeoutError, match="3 of 3 task runs had not finished"):
            futures.result(timeout=0.05)
        futures.wait(timeout=0.05)
        gate.release()
        futures.wait()
        assert all(future.done() for future in futures)
        assert futures.result() == [1, 2, 3]

    pipeline()


def test_resolve_futures_in_nested_collections(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> None:
        one, two = echo.submit(1), echo.submit(2)
        failed = broken.submit("resolved")
        structure = {"a": [one, (two, {"b": one})], "c": {one}, "d": "plain"}
        assert resolve_futures_to_results(structure) == {
            "a": [1, (2, {"b": 1})],
            "c": {1},
            "d": "plain",
        }
        states = resolve_futures_to_states([one, [failed]])
        assert isinstance(states[0], State) and states[0].is_completed()
        assert states[1][0].is_failed()
        with pytest.raises(ValueError, match="resolved"):
            resolve_futures_to_results([failed])
        assert resolve_futures_to_results(one) == 1

    pipeline()


def test_a_call_not_started_when_its_runner_is_interrupted_is_cancelled(reader: Reader) -> None:
    gate = Gate()
    runner = ThreadPoolTaskRunner(max_workers=1)
    runner.__enter__()
    started = runner.submit(held, {"gate": gate, "value": "started"})
    queued = runner.submit(echo, {"value": "never"})
    assert queued.state.type is StateType.PENDING
    threading.Timer(0.05, gate.release).start()
    runner.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert started.result() == "started"
    assert queued.state.type is StateType.CANCELLED
    assert "not started" in (queued.state.message or "")

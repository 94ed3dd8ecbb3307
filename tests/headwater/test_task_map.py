"""`Task.map`: one submitted run per item, `unmapped`, and the errors Prefect raises.

Runs go through the embedded service; the stored task runs are read back to check what ran
with which parameters.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from engine_support import Reader, current_run_id, unique
from headwater import State, StateType, allow_failure, flow, task, unmapped
from headwater.exceptions import MappingLengthMismatch, MappingMissingIterable, UpstreamTaskError
from headwater.futures import PrefectFutureList


@task
def scale(x: int, factor: int = 1) -> int:
    return x * factor


@task
def describe(value: Any, label: Any = "item") -> str:
    return f"{label}:{value!r}"


def test_map_submits_one_run_per_item_in_order(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        futures = scale.map([1, 2, 3], factor=10)
        assert isinstance(futures, PrefectFutureList)
        seen["ids"] = [future.task_run_id for future in futures]
        return futures.result()

    assert pipeline() == [10, 20, 30]
    runs = {run.id: run for run in reader.client.list_task_runs(seen["flow_run_id"])}
    assert [runs[run_id].parameters for run_id in seen["ids"]] == [
        {"x": 1, "factor": 10},
        {"x": 2, "factor": 10},
        {"x": 3, "factor": 10},
    ]
    assert sorted(run.dynamic_key for run in runs.values()) == ["0", "1", "2"]
    assert all(run.state is not None and run.state.is_completed() for run in runs.values())


def test_iterables_are_zipped_and_unmapped_goes_whole(reader: Reader) -> None:
    @task
    def pair(x: int, y: int, extra: list[int]) -> tuple[int, int, int]:
        return x, y, len(extra)

    @flow(name=unique())
    def pipeline() -> list[tuple[int, int, int]]:
        return pair.map(range(3), (10, 20, 30), unmapped([7, 8, 9, 10])).result()

    assert pipeline() == [(0, 10, 4), (1, 20, 4), (2, 30, 4)]


def test_strings_and_non_iterables_are_static(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> list[str]:
        return describe.map([1, 2], label="abc").result()

    assert pipeline() == ["abc:1", "abc:2"]


def test_a_dict_is_iterated_over_its_keys(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> list[str]:
        return describe.map({"a": 1, "b": 2}).result()

    assert pipeline() == ["item:'a'", "item:'b'"]


def test_defaults_are_not_mapped_over(reader: Reader) -> None:
    @task
    def with_default(x: int, table: tuple[int, ...] = (1, 2, 3, 4)) -> int:
        return x + len(table)

    @flow(name=unique())
    def pipeline() -> list[int]:
        return with_default.map([1, 2]).result()

    assert pipeline() == [5, 6]


def test_length_mismatch_is_refused_before_anything_runs(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        with pytest.raises(MappingLengthMismatch, match=r"x=3, factor=2") as raised:
            scale.map([1, 2, 3], factor=[1, 2])
        assert isinstance(raised.value, ValueError)
        assert "unmapped" in str(raised.value)

    pipeline()
    assert reader.client.list_task_runs(seen["flow_run_id"]) == []


def test_no_iterable_is_refused(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> None:
        with pytest.raises(MappingMissingIterable, match="no iterable"):
            scale.map(1, factor=2)
        with pytest.raises(MappingMissingIterable):
            describe.map("a string is one value")
        with pytest.raises(MappingMissingIterable):
            scale.map(unmapped([1, 2]))

    pipeline()


def test_an_empty_iterable_maps_to_no_runs(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> list[int]:
        return scale.map([]).result()

    assert pipeline() == []


def test_futures_are_mapped_over_and_chained(reader: Reader) -> None:
    @task
    def numbers(count: int) -> list[int]:
        return list(range(count))

    @task
    def three() -> int:
        return 3

    @flow(name=unique())
    def pipeline() -> list[int]:
        doubled = scale.map(numbers.submit(3), factor=2)  # a future's result is mapped over
        # a list of futures is mapped over item by item; an unmapped future goes to each run
        return scale.map(doubled, factor=unmapped(three.submit())).result()

    assert pipeline() == [0, 6, 12]


def test_return_state_and_failures_per_item(reader: Reader) -> None:
    @task
    def picky(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    @flow(name=unique())
    def pipeline() -> dict[str, Any]:
        states: list[State[Any]] = picky.map([1, 2, 3], return_state=True)
        futures = picky.map([1, 2, 3])
        downstream = scale.map(futures)
        tolerant = describe.map(allow_failure(futures))
        downstream.wait()
        return {
            "types": [state.type for state in states],
            "results": futures.result(raise_on_failure=False),
            "downstream": [future.state.name for future in downstream],
            "tolerant": tolerant.result(),
        }

    outcome = pipeline()
    assert outcome["types"] == [StateType.COMPLETED, StateType.FAILED, StateType.COMPLETED]
    assert outcome["results"][0] == 1 and outcome["results"][2] == 3
    assert isinstance(outcome["results"][1], ValueError)
    assert outcome["downstream"] == ["Completed", "NotReady", "Completed"]
    assert outcome["tolerant"] == ["item:1", "item:ValueError('two')", "item:3"]


def test_wait_for_applies_to_every_mapped_run(reader: Reader) -> None:
    release = threading.Event()
    order: list[str] = []

    @task
    def gate() -> None:
        release.wait(10)
        order.append("gate")

    @task
    def after(x: int) -> None:
        order.append(f"after-{x}")

    @flow(name=unique())
    def pipeline() -> None:
        upstream = gate.submit()
        futures = after.map([1, 2], wait_for=[upstream])
        assert not any(future.done() for future in futures)
        release.set()
        futures.wait()

    pipeline()
    assert order[0] == "gate" and sorted(order[1:]) == ["after-1", "after-2"]


def test_failed_wait_for_blocks_every_mapped_run(reader: Reader) -> None:
    @task
    def broken() -> None:
        raise RuntimeError("gate broke")

    @flow(name=unique())
    def pipeline() -> list[str]:
        futures = scale.map([1, 2], wait_for=[broken.submit()])
        for future in futures:
            with pytest.raises(UpstreamTaskError, match="gate broke"):
                future.result()
        return [future.state.name for future in futures]

    assert pipeline() == ["NotReady", "NotReady"]


def test_deferred_is_not_available(reader: Reader) -> None:
    with pytest.raises(NotImplementedError, match="deferred"):
        scale.map([1], deferred=True)

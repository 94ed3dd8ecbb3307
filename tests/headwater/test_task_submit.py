"""`Task.submit`: futures, upstream resolution, ordering and the flow's task runner.

Every run goes through the embedded service (a real in-process gRPC server); what happened is
read back from it: stored states, start and end times, parameters, tags.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from engine_support import Reader, current_run_id, unique
from headwater import (
    Completed,
    Failed,
    State,
    StateType,
    allow_failure,
    flow,
    get_run_logger,
    tags,
    task,
)
from headwater._annotations import quote
from headwater._runs import TaskRun
from headwater.context import FlowRunContext, TaskRunContext
from headwater.exceptions import CancelledRun, FlowRunTimeoutError, UpstreamTaskError
from headwater.futures import TaskRunFuture
from headwater.task_runners import ThreadPoolTaskRunner


def stored(reader: Reader, flow_run_id: str) -> dict[str, TaskRun]:
    """The flow run's task runs by id."""
    return {run.id: run for run in reader.client.list_task_runs(flow_run_id)}


def state_of(run: TaskRun) -> tuple[StateType, str]:
    assert run.state is not None
    return run.state.type, run.state.name


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
def broken(message: str = "boom") -> int:
    raise ValueError(message)


def test_submit_returns_a_future_whose_id_is_the_stored_run(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        future = add.submit(1, y=2)
        assert isinstance(future, TaskRunFuture)
        seen["id"] = future.task_run_id
        return future.result()

    assert pipeline() == 3
    runs = stored(reader, seen["flow_run_id"])
    assert list(runs) == [seen["id"]]
    run = runs[seen["id"]]
    assert state_of(run) == (StateType.COMPLETED, "Completed")
    assert run.parameters == {"x": 1, "y": 2}
    assert run.dynamic_key == "0"


def test_return_state_waits_and_returns_the_final_state(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> dict[str, State[Any]]:
        return {"ok": add.submit(1, return_state=True), "failed": broken.submit(return_state=True)}

    states = pipeline()
    ok, failed = states["ok"], states["failed"]
    assert ok.is_completed() and ok.result() == 2
    assert failed.is_failed()
    with pytest.raises(ValueError, match="boom"):
        failed.result()


def test_futures_in_arguments_resolve_to_their_results_also_when_nested(reader: Reader) -> None:
    @task
    def combine(items: list[int], table: dict[str, Any], pair: tuple[int, int]) -> int:
        return sum(items) + table["a"] + sum(table["nested"]) + sum(pair)

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        one, two, three = add.submit(0), add.submit(1), add.submit(2)
        future = combine.submit([one, two], {"a": three, "nested": [one]}, (two, 10))
        seen["id"] = future.task_run_id
        return future.result()

    # [1, 2] + 3 + [1] + (2 + 10)
    assert pipeline() == 19
    run = stored(reader, seen["flow_run_id"])[seen["id"]]
    assert run.parameters == {"items": [1, 2], "table": {"a": 3, "nested": [1]}, "pair": [2, 10]}


def test_a_task_called_directly_resolves_futures_too(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> int:
        return add(add.submit(5), y=add.submit(1))

    assert pipeline() == 8


def test_a_task_called_directly_with_a_failed_upstream_does_not_run(reader: Reader) -> None:
    calls: list[Any] = []

    @task
    def record(value: Any) -> None:
        calls.append(value)

    @flow(name=unique())
    def pipeline() -> str:
        upstream = broken.submit("direct")
        with pytest.raises(UpstreamTaskError, match="direct"):
            record(upstream)
        with pytest.raises(UpstreamTaskError, match="direct"):
            record(1, wait_for=[upstream])
        return record(upstream, return_state=True).name

    assert pipeline() == "NotReady"
    assert calls == []


def test_dynamic_keys_follow_submission_order(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        seen["ids"] = [add.submit(index).task_run_id for index in range(20)]

    pipeline()
    runs = stored(reader, seen["flow_run_id"])
    assert [runs[run_id].dynamic_key for run_id in seen["ids"]] == [str(i) for i in range(20)]
    assert [runs[run_id].parameters["x"] for run_id in seen["ids"]] == list(range(20))


def test_prints_of_submitted_tasks_become_their_logs(reader: Reader) -> None:
    @task(log_prints=True)
    def chatty(index: int) -> None:
        print(f"hello from {index}")

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        seen["ids"] = [future.task_run_id for future in chatty.map(range(3))]

    pipeline()
    logs = reader.client.list_logs(seen["flow_run_id"])
    by_run = {line.task_run_id: line.message for line in logs if "hello from" in line.message}
    assert by_run == {run_id: f"hello from {i}" for i, run_id in enumerate(seen["ids"])}


def test_wait_for_orders_runs_by_the_stored_times(reader: Reader) -> None:
    release = threading.Event()
    order: list[str] = []

    @task
    def first() -> None:
        release.wait(10)
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        upstream = first.submit()
        downstream = second.submit(wait_for=[upstream])
        seen["ids"] = upstream.task_run_id, downstream.task_run_id
        assert not downstream.done()  # `first` is held, so `second` cannot have run
        release.set()
        downstream.wait()

    pipeline()
    assert order == ["first", "second"]
    runs = stored(reader, seen["flow_run_id"])
    upstream_run, downstream_run = (runs[run_id] for run_id in seen["ids"])
    assert upstream_run.end_time is not None and downstream_run.start_time is not None
    assert upstream_run.end_time <= downstream_run.start_time


def test_a_failed_upstream_means_the_downstream_never_runs(reader: Reader) -> None:
    calls: list[int] = []

    @task
    def downstream(value: int) -> int:
        calls.append(value)
        return value

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> str:
        seen["flow_run_id"] = current_run_id()
        upstream = broken.submit("upstream broke")
        by_data = downstream.submit(upstream)
        by_order = downstream.submit(1, wait_for=[upstream])
        seen["ids"] = upstream.task_run_id, by_data.task_run_id, by_order.task_run_id
        for future in (by_data, by_order):
            with pytest.raises(UpstreamTaskError) as raised:
                future.result()
            assert upstream.task_run_id in str(raised.value)
            assert "'broken'" in str(raised.value)
            assert "upstream broke" in str(raised.value)
            assert future.state.name == "NotReady"
        return "flow goes on"

    # Unreturned failures do not fail the flow (Prefect 3).
    assert pipeline() == "flow goes on"
    assert calls == []
    runs = stored(reader, seen["flow_run_id"])
    upstream_id, by_data_id, by_order_id = seen["ids"]
    assert state_of(runs[upstream_id]) == (StateType.FAILED, "Failed")
    for run_id in (by_data_id, by_order_id):
        run = runs[run_id]
        assert state_of(run) == (StateType.FAILED, "NotReady")
        assert run.run_count == 0 and run.start_time is None
        assert run.state is not None and upstream_id in (run.state.message or "")


def test_failure_propagates_down_a_chain_and_retries_are_not_spent(reader: Reader) -> None:
    @task(retries=3, retry_delay_seconds=0)
    def middle(value: int) -> int:
        return value

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> str:
        seen["flow_run_id"] = current_run_id()
        last = add.submit(middle.submit(broken.submit()))
        last.wait()
        return last.state.name

    assert pipeline() == "NotReady"
    runs = list(stored(reader, seen["flow_run_id"]).values())
    assert [state_of(run) for run in runs] == [
        (StateType.FAILED, "Failed"),
        (StateType.FAILED, "NotReady"),
        (StateType.FAILED, "NotReady"),
    ]
    assert [run.run_count for run in runs] == [1, 0, 0]


def test_allow_failure_runs_the_downstream_with_the_exception(reader: Reader) -> None:
    @task
    def inspect(value: Any) -> str:
        return f"{type(value).__name__}: {value}"

    @flow(name=unique())
    def pipeline() -> tuple[str, str]:
        upstream = broken.submit("tolerated")
        by_data = inspect.submit(allow_failure(upstream))
        by_order = inspect.submit("ran anyway", wait_for=[allow_failure(upstream)])
        return by_data.result(), by_order.result()

    assert pipeline() == ("ValueError: tolerated", "str: ran anyway")


def test_quote_passes_an_argument_without_looking_inside(reader: Reader) -> None:
    @task
    def kinds(items: list[Any]) -> list[str]:
        return [type(item).__name__ for item in items]

    @flow(name=unique())
    def pipeline() -> list[str]:
        upstream = add.submit(1)
        upstream.wait()
        return kinds.submit(quote([upstream])).result()

    assert pipeline() == ["ConcurrentTaskRunFuture"]


def test_states_passed_as_arguments_resolve_to_their_results(reader: Reader) -> None:
    @flow(name=unique())
    def pipeline() -> tuple[int, str]:
        completed = add(1, return_state=True)
        failed = broken(return_state=True)
        blocked = add.submit(failed, return_state=True)
        return add.submit(completed).result(), blocked.name

    assert pipeline() == (3, "NotReady")


def test_one_thousand_submitted_tasks_are_stored_completed_before_the_flow_ends(
    reader: Reader,
) -> None:
    @task
    def trivial(index: int) -> int:
        return index

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        for index in range(1000):
            trivial.submit(index)  # never waited for: the flow run waits for them

    pipeline()
    flow_run = reader.client.get_flow_run(seen["flow_run_id"])
    assert flow_run.state is not None and flow_run.state.type is StateType.COMPLETED
    assert flow_run.end_time is not None
    runs = list(stored(reader, seen["flow_run_id"]).values())
    assert len(runs) == 1000
    assert sorted(run.parameters["index"] for run in runs) == list(range(1000))
    for run in runs:
        assert state_of(run) == (StateType.COMPLETED, "Completed")
        assert run.end_time is not None and run.end_time <= flow_run.end_time


def test_a_flow_that_raises_still_waits_for_its_submitted_tasks(reader: Reader) -> None:
    release = threading.Event()

    @task
    def held() -> str:
        release.wait(10)
        return "done"

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        held.submit()
        threading.Timer(0.05, release.set).start()
        raise RuntimeError("flow broke")

    with pytest.raises(RuntimeError, match="flow broke"):
        pipeline()
    flow_run = reader.client.get_flow_run(seen["flow_run_id"])
    (run,) = stored(reader, seen["flow_run_id"]).values()
    assert state_of(run) == (StateType.COMPLETED, "Completed")
    assert flow_run.end_time is not None and run.end_time is not None
    assert run.end_time <= flow_run.end_time


def test_max_workers_limits_how_many_run_at_once(reader: Reader) -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]
    gate = threading.Barrier(2, timeout=10)

    @task
    def counted(index: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if index < 2:
            gate.wait()  # the first two meet: two do run at once
        with lock:
            running[0] -= 1
        return index

    @flow(name=unique(), task_runner=ThreadPoolTaskRunner(max_workers=2))
    def limited() -> list[int]:
        return [future.result() for future in [counted.submit(index) for index in range(8)]]

    assert limited() == list(range(8))
    assert peak[0] == 2


def test_without_a_limit_many_run_at_once(reader: Reader) -> None:
    gate = threading.Barrier(5, timeout=10)

    @task
    def meet(index: int) -> int:
        gate.wait()  # returns only once five runs are inside at the same time
        return index

    @flow(name=unique())
    def unlimited() -> list[int]:
        return [future.result() for future in [meet.submit(index) for index in range(5)]]

    assert unlimited() == list(range(5))


def test_worker_threads_see_the_flow_run_tags_and_logger(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @task
    def look() -> tuple[str | None, str | None, str]:
        flow_context = FlowRunContext.get()
        task_context = TaskRunContext.get()
        get_run_logger().info("from a worker thread")
        return (
            flow_context.flow_run_id if flow_context else None,
            task_context.task_run_id if task_context else None,
            threading.current_thread().name,
        )

    @flow(name=unique())
    def pipeline() -> tuple[str | None, str | None, str]:
        seen["flow_run_id"] = current_run_id()
        with tags("submitted"):
            future = look.submit()
        seen["id"] = future.task_run_id
        return future.result()

    flow_run_id, task_run_id, thread_name = pipeline()
    assert flow_run_id == seen["flow_run_id"]
    assert task_run_id == seen["id"]
    assert thread_name.startswith("headwater-task")
    run = stored(reader, seen["flow_run_id"])[seen["id"]]
    assert run.tags == ("submitted",)
    logs = reader.client.list_logs(seen["flow_run_id"])
    assert any(line.message == "from a worker thread" for line in logs)


def test_async_and_sync_tasks_submitted_from_an_async_flow(reader: Reader) -> None:
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    seen: dict[str, Any] = {}

    @flow(name=unique())
    async def pipeline() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        futures = [double.submit(1), add.submit(1), double.submit(add.submit(2))]
        return [future.result() for future in futures]

    assert asyncio.run(pipeline()) == [2, 2, 6]
    runs = stored(reader, seen["flow_run_id"]).values()
    assert len(runs) == 4
    assert all(state_of(run) == (StateType.COMPLETED, "Completed") for run in runs)


def test_submit_outside_any_flow_runs_on_its_own(reader: Reader) -> None:
    views: list[TaskRun] = []

    @task(on_completion=[lambda task_obj, run, state: views.append(run)])
    def alone(x: int) -> int:
        return x + 1

    future = alone.submit(41)
    assert future.result(timeout=30) == 42
    (view,) = views
    assert view.id == future.task_run_id
    assert view.flow_run_id == ""
    assert state_of(view) == (StateType.COMPLETED, "Completed")


def test_submit_and_call_inside_a_task(reader: Reader) -> None:
    @task
    def outer(x: int) -> int:
        inner = add.submit(x)  # not waited for: the task run waits for it before it ends
        add.submit(x)
        return add(x) + inner.result()

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        return outer.submit(1).result()

    assert pipeline() == 4
    runs = list(stored(reader, seen["flow_run_id"]).values())
    assert len(runs) == 4
    outer_run = next(run for run in runs if run.name.startswith("outer"))
    assert all(state_of(run) == (StateType.COMPLETED, "Completed") for run in runs)
    for run in runs:
        assert run.end_time is not None and outer_run.end_time is not None
        assert run.end_time <= outer_run.end_time


class TestReturnedFutures:
    def test_one_returned_future_gives_its_result_and_state(self, reader: Reader) -> None:
        @flow(name=unique())
        def ok() -> Any:
            return add.submit(1)

        @flow(name=unique())
        def failing() -> Any:
            return broken.submit("returned")

        assert ok() == 2
        with pytest.raises(ValueError, match="returned"):
            failing()
        assert failing(return_state=True).is_failed()

    def test_a_returned_list_of_futures_gives_their_states(self, reader: Reader) -> None:
        @flow(name=unique())
        def ok() -> Any:
            return [add.submit(1), add.submit(2)]

        @flow(name=unique())
        def some_fail() -> Any:
            return [add.submit(1), broken.submit("one of two")]

        states = ok()
        assert [state.result() for state in states] == [2, 3]
        final = some_fail(return_state=True)
        assert final.is_failed() and final.message == "1/2 states failed."
        with pytest.raises(ValueError, match="one of two"):
            some_fail()

    def test_a_returned_completed_state_list_is_stored_completed(self, reader: Reader) -> None:
        name = unique()

        @flow(name=name)
        def returns_states() -> Any:
            return [Completed(data=1), add.submit(1)]

        returns_states()
        assert reader.state_type(reader.only_run_of(name).id) == "COMPLETED"

    def test_returned_failed_state_of_a_task_fails_the_flow(self, reader: Reader) -> None:
        @flow(name=unique())
        def returns_failed() -> Any:
            state = broken.submit(return_state=True)
            return state if state.is_failed() else Failed(message="unexpected")

        with pytest.raises(ValueError, match="boom"):
            returns_failed()


def test_cancelling_the_flow_run_cancels_its_running_submitted_tasks(reader: Reader) -> None:
    started = threading.Event()
    ran_to_the_end: list[bool] = []
    seen: dict[str, Any] = {}

    @task
    def long_running() -> None:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.02)
        ran_to_the_end.append(True)

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        futures = [long_running.submit() for _ in range(2)]
        seen["ids"] = [future.task_run_id for future in futures]
        for future in futures:
            future.wait()

    def cancel_once_started() -> None:
        assert started.wait(10)
        reader.client.cancel_flow_run(seen["flow_run_id"], reason="stop it")

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    with pytest.raises(CancelledRun):
        pipeline()
    canceller.join()
    assert ran_to_the_end == []
    flow_run = reader.client.get_flow_run(seen["flow_run_id"])
    assert flow_run.state is not None and flow_run.state.type is StateType.CANCELLED
    runs = stored(reader, seen["flow_run_id"])
    for run_id in seen["ids"]:
        run = runs[run_id]
        assert state_of(run) == (StateType.CANCELLED, "Cancelled")
        assert run.state is not None and "stop it" in (run.state.message or "")
        assert run.end_time is not None and flow_run.end_time is not None
        assert run.end_time <= flow_run.end_time


def test_a_cancelled_flow_run_refuses_tasks_a_worker_starts_late(reader: Reader) -> None:
    started = threading.Event()
    ran: list[int] = []
    seen: dict[str, Any] = {}

    @task
    def first() -> None:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.02)

    @task
    def queued(index: int) -> None:
        ran.append(index)

    @flow(name=unique(), task_runner=ThreadPoolTaskRunner(max_workers=1))
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        blocker = first.submit()
        queued.map(range(3))  # behind `first` on the only worker: never started
        blocker.wait()

    def cancel_once_started() -> None:
        assert started.wait(10)
        reader.client.cancel_flow_run(seen["flow_run_id"])

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    with pytest.raises(CancelledRun):
        pipeline()
    canceller.join()
    assert ran == []
    runs = list(stored(reader, seen["flow_run_id"]).values())
    # Queued calls are dropped, or (when the worker freed by the interrupt took one first)
    # refused as they start: none runs its function, every stored run is CANCELLED.
    assert 1 <= len(runs) <= 4
    assert {state_of(run) for run in runs} == {(StateType.CANCELLED, "Cancelled")}


def test_a_flow_run_that_times_out_stops_its_submitted_tasks(reader: Reader) -> None:
    ran_to_the_end: list[bool] = []
    seen: dict[str, Any] = {}

    @task
    def long_running(index: int = 0) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.02)
        ran_to_the_end.append(True)

    @flow(name=unique(), timeout_seconds=0.5)
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        seen["id"] = long_running.submit().task_run_id
        long_running.map(range(3))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.02)

    with pytest.raises(FlowRunTimeoutError):
        pipeline()
    assert ran_to_the_end == []
    flow_run = reader.client.get_flow_run(seen["flow_run_id"])
    assert flow_run.state is not None and flow_run.state.type is StateType.FAILED
    runs = stored(reader, seen["flow_run_id"])
    assert len(runs) == 4
    for run in runs.values():
        assert state_of(run) == (StateType.CANCELLED, "Cancelled")
        assert run.state is not None and "timed out" in (run.state.message or "")
        assert run.end_time is not None and flow_run.end_time is not None
        assert run.end_time <= flow_run.end_time

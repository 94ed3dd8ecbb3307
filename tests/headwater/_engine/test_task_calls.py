"""Task calls on the engine, over the embedded service (a real in-process gRPC server).

Each assertion about what happened reads the task runs back from the service: their stored
state, run count, name, keys, tags and parameters.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from engine_support import Reader, current_run_id, unique
from headwater import Failed, State, StateType, flow, tags, task
from headwater._runs import TaskRun
from headwater.cache_policies import INPUTS
from headwater.context import FlowRunContext, TaskRunContext, get_run_context
from headwater.exceptions import TaskRunTimeoutError
from headwater.runtime import flow_run, task_run


def stored(reader: Reader, flow_run_id: str) -> list[TaskRun]:
    return reader.client.list_task_runs(flow_run_id)


def state_of(run: TaskRun) -> tuple[StateType, str]:
    assert run.state is not None
    return run.state.type, run.state.name


def test_a_task_in_a_flow_returns_its_result_and_is_stored(reader: Reader) -> None:
    @task(task_run_name="double-{x}", tags=["math"])
    def double(x: int) -> int:
        return 2 * x

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        with tags("nightly"):
            return double(1) + double(2)

    assert pipeline() == 6
    runs = stored(reader, seen["flow_run_id"])
    assert [run.name for run in runs] == ["double-1", "double-2"]
    assert [run.dynamic_key for run in runs] == ["0", "1"]
    assert {run.task_key for run in runs} == {double.task_key}
    assert [run.parameters for run in runs] == [{"x": 1}, {"x": 2}]
    for run in runs:
        assert state_of(run) == (StateType.COMPLETED, "Completed")
        assert run.run_count == 1
        assert run.tags == ("math", "nightly")


def test_return_state_and_failures(reader: Reader) -> None:
    @task
    def broken() -> None:
        raise ValueError("boom")

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> State[Any]:
        seen["flow_run_id"] = current_run_id()
        state = broken(return_state=True)
        with pytest.raises(ValueError, match="boom"):
            broken()
        return Failed(message="done") if not state.is_failed() else state

    final = pipeline(return_state=True)
    assert final.is_failed()
    runs = stored(reader, seen["flow_run_id"])
    assert [state_of(run) for run in runs] == [(StateType.FAILED, "Failed")] * 2
    assert runs[0].failure is not None and "boom" in runs[0].failure.message


def test_retries_are_decided_by_the_service(reader: Reader) -> None:
    attempts: list[int] = []

    @task(retries=3, retry_delay_seconds=[0, 0, 0])
    def flaky() -> str:
        attempts.append(task_run.run_count)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    @task(retries=1, retry_delay_seconds=0)
    def hopeless() -> None:
        raise RuntimeError("never")

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> str:
        seen["flow_run_id"] = current_run_id()
        assert hopeless(return_state=True).is_failed()
        return flaky()

    assert pipeline() == "ok"
    assert attempts == [1, 2, 3]
    hopeless_run, flaky_run = stored(reader, seen["flow_run_id"])
    assert state_of(flaky_run) == (StateType.COMPLETED, "Completed")
    assert flaky_run.run_count == 3
    assert state_of(hopeless_run) == (StateType.FAILED, "Failed")
    assert hopeless_run.run_count == 2


def test_timeout(reader: Reader) -> None:
    @task(timeout_seconds=0.2)
    def slow() -> None:
        import time

        time.sleep(5)

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        with pytest.raises(TaskRunTimeoutError, match=r"exceeded timeout of 0\.2 seconds"):
            slow()

    pipeline()
    (run,) = stored(reader, seen["flow_run_id"])
    assert state_of(run) == (StateType.FAILED, "TimedOut")


def test_hooks_get_the_task_its_run_and_the_state(reader: Reader) -> None:
    calls: list[tuple[str, str, StateType]] = []

    def record(name: str) -> Any:
        def hook(task_obj: Any, run: TaskRun, state: State[Any]) -> None:
            calls.append((name, f"{task_obj.name}:{run.name}", state.type))

        return hook

    @task(on_completion=[record("completion")], on_running=[record("running")])
    def fine() -> int:
        return 1

    @task(task_run_name=lambda: "named-by-callable")
    def broken() -> None:
        raise ValueError("boom")

    broken.on_failure(record("failure"))

    @flow(name=unique())
    def pipeline() -> None:
        fine()
        broken(return_state=True)

    pipeline()
    assert calls == [
        ("running", "fine:fine-0", StateType.RUNNING),
        ("completion", "fine:fine-0", StateType.COMPLETED),
        ("failure", "broken:named-by-callable", StateType.FAILED),
    ]


def test_the_run_context_inside_a_task(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @task
    def look(x: int) -> None:
        context = get_run_context()
        assert isinstance(context, TaskRunContext)
        seen["task_context"] = (context.task_run_id, context.parameters, context.flow_run_id)
        seen["runtime"] = (task_run.id, task_run.task_name, task_run.parameters, flow_run.id)
        seen["flow_context"] = FlowRunContext.get()

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        look(7)

    pipeline()
    (run,) = stored(reader, seen["flow_run_id"])
    assert seen["task_context"] == (run.id, {"x": 7}, seen["flow_run_id"])
    assert seen["runtime"] == (run.id, "look", {"x": 7}, seen["flow_run_id"])
    assert seen["flow_context"].flow_run_id == seen["flow_run_id"]


def test_a_finished_task_run_leaves_no_reference_cycle(reader: Reader) -> None:
    """A run's objects are freed when it ends, not left to the garbage collector.

    Cyclic garbage from every task run would make the collector run often, and its full
    passes walk every object in the process (the embedded server's included).
    """

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name=unique())
    def pipeline() -> int:
        return double(1) + double(2)

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert pipeline() == 6
        gc.collect()
        leftovers = {type(item).__name__ for item in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not leftovers & {"TaskEngine", "TaskRunContext", "TaskCall", "TaskRunSnapshot"}


def test_a_kept_task_context_shows_the_run_as_it_was_last_reported(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @task(retries=1)
    def flaky() -> None:
        seen["context"] = get_run_context()
        if task_run.run_count == 1:
            raise ValueError("the first attempt fails")

    @flow(name=unique())
    def pipeline() -> None:
        flaky()

    pipeline()
    assert seen["context"].task_run.run_count == 2


def test_a_task_outside_any_flow_is_a_task_run_of_its_own(reader: Reader) -> None:
    views: list[TaskRun] = []

    @task(on_completion=[lambda task_obj, run, state: views.append(run)])
    def alone(x: int) -> int:
        return x + 1

    assert alone(1) == 2
    assert alone(2) == 3
    first, second = views
    assert first.id != second.id
    assert first.flow_run_id == ""
    assert state_of(first) == (StateType.COMPLETED, "Completed")


def test_an_async_task_in_an_async_flow(reader: Reader) -> None:
    @task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 10

    seen: dict[str, Any] = {}

    @flow(name=unique())
    async def pipeline() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        return [await fetch(1), await fetch(2)]

    assert asyncio.run(pipeline()) == [10, 20]
    runs = stored(reader, seen["flow_run_id"])
    assert [state_of(run) for run in runs] == [(StateType.COMPLETED, "Completed")] * 2


def test_a_cached_result_is_returned_without_running_the_task(reader: Reader) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS, persist_result=True)
    def expensive(x: int) -> dict[str, int]:
        calls.append(x)
        return {"x": x}

    seen: list[str] = []

    @flow(name=unique())
    def pipeline(x: int) -> dict[str, int]:
        seen.append(current_run_id())
        return expensive(x)

    assert pipeline(1) == {"x": 1}
    assert pipeline(1) == {"x": 1}  # another flow run: the cache lives in the service
    assert pipeline(2) == {"x": 2}
    assert calls == [1, 2]
    states = [state_of(stored(reader, run_id)[0]) for run_id in seen]
    assert states == [
        (StateType.COMPLETED, "Completed"),
        (StateType.COMPLETED, "Cached"),
        (StateType.COMPLETED, "Completed"),
    ]
    refreshed = expensive.with_options(refresh_cache=True)

    @flow(name=unique())
    def again() -> dict[str, int]:
        return refreshed(1)

    assert again() == {"x": 1}
    assert calls == [1, 2, 1]


def test_retry_condition_decides_whether_a_failure_is_retried(reader: Reader) -> None:
    attempts: list[str] = []

    def only_connection_errors(task_obj: Any, run: TaskRun, state: State[Any]) -> bool:
        assert task_obj.name == "picky"
        return isinstance(state.data, ConnectionError)

    @task(retries=5, retry_delay_seconds=0, retry_condition_fn=only_connection_errors)
    def picky(errors: list[type[Exception]]) -> None:
        error = errors[len(attempts)]
        attempts.append(error.__name__)
        raise error("nope")

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=lambda *_: 1 / 0)
    def broken_condition() -> None:
        raise RuntimeError("nope")

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        with pytest.raises(ValueError, match="nope"):
            picky([ConnectionError, ConnectionError, ValueError, ConnectionError])
        with pytest.raises(RuntimeError, match="nope"):
            broken_condition()

    pipeline()
    assert attempts == ["ConnectionError", "ConnectionError", "ValueError"]
    picky_run, broken_run = stored(reader, seen["flow_run_id"])
    assert state_of(picky_run) == (StateType.FAILED, "Failed")
    assert picky_run.run_count == 3
    assert state_of(broken_run) == (StateType.FAILED, "Failed")
    assert broken_run.run_count == 1


def test_nested_tasks_returned_states_and_interrupts(reader: Reader) -> None:
    @task
    def inner(x: int) -> tuple[int, str | None]:
        return x, task_run.task_name

    @task
    def outer(x: int) -> tuple[int, str | None]:
        return inner(x)

    @task
    def gives_up() -> State[Any]:
        return Failed(message="returned failure")

    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        seen["nested"] = outer(1)
        seen["given_up"] = gives_up(return_state=True)
        interrupted()

    with pytest.raises(KeyboardInterrupt):
        pipeline()
    assert seen["nested"] == (1, "inner")
    assert seen["given_up"].is_failed()
    runs = {run.name: run for run in stored(reader, seen["flow_run_id"])}
    assert state_of(runs["outer-0"]) == (StateType.COMPLETED, "Completed")
    assert state_of(runs["inner-0"]) == (StateType.COMPLETED, "Completed")
    assert state_of(runs["gives_up-0"]) == (StateType.FAILED, "Failed")
    assert state_of(runs["interrupted-0"]) == (StateType.CRASHED, "Crashed")
    assert reader.state_type(seen["flow_run_id"]) == "CRASHED"

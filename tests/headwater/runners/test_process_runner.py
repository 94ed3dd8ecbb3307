"""ProcessPoolTaskRunner: submitted tasks run in spawned children that report to the service.

Every flow here runs on the embedded service; each child reaches it through the abstract unix
socket whose address the flow's process passes along. What happened is read back from the
service (client ListTaskRuns), never from the runner.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from engine_support import Reader, current_run_id, unique
from headwater import StateType, flow, task
from headwater._runs import TaskRun
from headwater.exceptions import CrashedRun, UpstreamTaskError
from headwater.futures import as_completed, wait
from headwater.logging import get_run_logger
from headwater.runtime import flow_run
from headwater.task_runners import ProcessPoolTaskRunner


def stored(reader: Reader, flow_run_id: str) -> dict[str, TaskRun]:
    return {run.name: run for run in reader.client.list_task_runs(flow_run_id)}


def state_type(run: TaskRun) -> StateType:
    assert run.state is not None
    return run.state.type


@task(task_run_name="pid-{x}")
def pid_of(x: int) -> tuple[int, int]:
    return x, os.getpid()


@task(task_run_name="add-{a}-{b}")
def add(a: int, b: int) -> int:
    return a + b


@task(task_run_name="async-{x}")
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@task(task_run_name="logs")
def logs_a_line() -> int:
    get_run_logger().info("hello from process %d", os.getpid())
    return os.getpid()


@task(task_run_name="inner-{x}")
def inner(x: int) -> int:
    return x + 1


@task(task_run_name="outer-{x}")
def outer(x: int) -> tuple[str | None, str | None, int]:
    # In the child: the flow run is current, and a task called here belongs to it.
    return flow_run.id, flow_run.name, inner(x) * 10


@task(task_run_name="flaky", retries=1, retry_delay_seconds=0)
def flaky(marker: str) -> int:
    # The first attempt leaves a mark and fails; the retry (in the same child) finds it.
    if not os.path.exists(marker):
        Path(marker).write_text("tried")
        raise RuntimeError("first attempt")
    return os.getpid()


@task(task_run_name="broken")
def broken() -> int:
    raise ValueError("no luck")


@task(task_run_name="killed")
def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached: the signal ends the process


def test_tasks_run_in_other_processes_and_report_their_states(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=2))
    def pipeline() -> list[tuple[int, int]]:
        seen["flow_run_id"] = current_run_id()
        return pid_of.map(range(4)).result()

    results = pipeline()
    assert [x for x, _ in results] == [0, 1, 2, 3]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2
    runs = stored(reader, seen["flow_run_id"])
    assert sorted(runs) == ["pid-0", "pid-1", "pid-2", "pid-3"]
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}


def test_futures_wait_resolve_and_complete_like_thread_ones(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=2))
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        first = add.submit(1, 2)
        second = add.submit(10, 20)
        total = add.submit(first, second)  # futures as arguments resolve first
        done, not_done = wait([first, second])
        assert done == {first, second} and not not_done
        assert first.state.is_completed() and first.task_run_id
        assert {future.result() for future in as_completed([first, second])} == {3, 30}
        seen["ids"] = (first.task_run_id, total.task_run_id)
        return total.result()

    assert pipeline() == 33
    runs = stored(reader, seen["flow_run_id"])
    assert runs["add-3-30"].id == seen["ids"][1]
    assert runs["add-1-2"].id == seen["ids"][0]
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}


def test_async_tasks_and_run_logs_from_a_child(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> tuple[int, int]:
        seen["flow_run_id"] = current_run_id()
        return async_double.submit(21).result(), logs_a_line.submit().result()

    doubled, child_pid = pipeline()
    assert doubled == 42
    assert child_pid != os.getpid()
    runs = stored(reader, seen["flow_run_id"])
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}
    assert f"hello from process {child_pid}" in reader.log_messages(seen["flow_run_id"])


def test_the_flow_run_is_current_in_the_child(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> tuple[str | None, str | None, int]:
        seen["flow_run_id"] = current_run_id()
        seen["flow_run_name"] = flow_run.name
        future = outer.submit(1)
        seen["outer_id"] = future.task_run_id
        return future.result()

    flow_run_id, flow_run_name, value = pipeline()
    assert (flow_run_id, flow_run_name) == (seen["flow_run_id"], seen["flow_run_name"])
    assert value == 20
    runs = stored(reader, seen["flow_run_id"])
    assert sorted(runs) == ["inner-1", "outer-1"]
    # Numbered under the outer run: the child cannot count calls with the flow's process.
    assert runs["inner-1"].dynamic_key == f"{seen['outer_id']}.0"
    assert {state_type(run) for run in runs.values()} == {StateType.COMPLETED}


def test_retries_decided_by_the_service_run_in_the_child(reader: Reader, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        result: int = flaky.submit(str(tmp_path / "marker")).result()
        return result

    assert pipeline() != os.getpid()
    (run,) = stored(reader, seen["flow_run_id"]).values()
    assert state_type(run) is StateType.COMPLETED
    assert run.run_count == 2


def test_a_failed_upstream_stops_the_downstream(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=2))
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        failed = broken.submit()
        downstream = add.submit(failed, 1)
        with pytest.raises(ValueError, match="no luck"):
            failed.result()
        with pytest.raises(UpstreamTaskError, match="broken"):
            downstream.result()

    pipeline()
    runs = stored(reader, seen["flow_run_id"])
    assert state_type(runs["broken"]) is StateType.FAILED
    (downstream,) = (run for name, run in runs.items() if name != "broken")
    assert state_type(downstream) is StateType.FAILED
    assert downstream.state is not None and downstream.state.name == "NotReady"


def test_a_task_whose_process_is_killed_ends_crashed(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=2))
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        victim = killed.submit()
        victim.wait()
        seen["state"] = victim.state
        with pytest.raises(CrashedRun, match=r"pid \d+\) died before the task finished"):
            victim.result()
        # The pool was replaced: the flow goes on submitting.
        return add.submit(2, 2).result()

    assert pipeline() == 4
    runs = stored(reader, seen["flow_run_id"])
    assert state_type(runs["killed"]) is StateType.CRASHED
    assert runs["killed"].state is not None
    assert "died before the task finished" in (runs["killed"].state.message or "")
    assert seen["state"].is_crashed()
    assert state_type(runs["add-2-2"]) is StateType.COMPLETED


def test_calls_queued_behind_a_dead_child_run_on_a_fresh_pool(reader: Reader) -> None:
    seen: dict[str, Any] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        victim = killed.submit()
        queued = add.map(range(3), 100)  # behind the victim, in the one child's queue
        victim.wait()
        return queued.result()

    assert pipeline() == [100, 101, 102]
    runs = stored(reader, seen["flow_run_id"])
    assert state_type(runs.pop("killed")) is StateType.CRASHED
    assert sorted(runs) == ["add-0-100", "add-1-100", "add-2-100"]
    for run in runs.values():
        assert state_type(run) is StateType.COMPLETED
        assert run.run_count == 1


def test_the_arguments_are_checked_and_kept_by_duplicate() -> None:
    runner = ProcessPoolTaskRunner(max_workers=3, initializer=mark_child, initargs=["ready"])
    assert runner.duplicate() == runner
    assert repr(runner) == (
        f"ProcessPoolTaskRunner(max_workers=3, initializer={mark_child!r}, initargs=('ready',))"
    )
    with pytest.raises(ValueError, match="positive integer"):
        ProcessPoolTaskRunner(max_workers=0)
    with pytest.raises(TypeError, match="initializer must be a function called in each child"):
        ProcessPoolTaskRunner(initializer="setup")  # type: ignore[arg-type]


def mark_child(prefix: str) -> None:
    """An initializer, as Prefect's docs' would open a connection: run once in each child."""
    os.environ["HEADWATER_TEST_CHILD_MARK"] = f"{prefix}-{os.getpid()}"


def refuse_to_start() -> None:
    raise RuntimeError("no database here")


@task(task_run_name="mark-{x}")
def child_mark(x: int) -> tuple[str, int]:
    return os.environ.get("HEADWATER_TEST_CHILD_MARK", ""), os.getpid()


def test_the_initializer_runs_in_each_child_before_its_tasks(reader: Reader) -> None:
    runner = ProcessPoolTaskRunner(max_workers=2, initializer=mark_child, initargs=("ready",))

    @flow(name=unique(), task_runner=runner)
    def pipeline() -> list[tuple[str, int]]:
        return child_mark.map(range(4)).result()

    marks = pipeline()
    assert len(marks) == 4
    for mark, pid in marks:
        assert mark == f"ready-{pid}"  # set in that very process, before the task
        assert pid != os.getpid()
    assert "HEADWATER_TEST_CHILD_MARK" not in os.environ  # never in the flow's process


def test_an_initializer_that_raises_fails_the_tasks_and_says_so(
    reader: Reader, capfd: pytest.CaptureFixture[str]
) -> None:
    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(1, initializer=refuse_to_start))
    def pipeline() -> None:
        child_mark.submit(0).result()

    with pytest.raises(CrashedRun, match="The task run crashed: BrokenProcessPool"):
        pipeline()
    err = capfd.readouterr().err
    assert "ProcessPoolTaskRunner initializer refuse_to_start raised" in err
    assert "RuntimeError: no database here" in err

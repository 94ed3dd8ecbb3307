"""Run logs of tasks, against a real server subprocess (SQLite and PostgreSQL).

Lines from ``get_run_logger()`` and ``log_prints`` inside a task carry the task run's id, are
stored with its flow run, and can be listed per task run; a task called outside any flow has
no flow run, and its lines are stored with the task run alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import Reader, current_run_id, sdk_target, unique
from headwater import flow, task
from headwater.logging import get_run_logger
from headwater.task_runners import ProcessPoolTaskRunner

pytestmark = pytest.mark.integration


@task(log_prints=True)
def shout(n: int) -> int:
    """Module level, so a child process of the process runner imports it by name."""
    print(f"user: shout {n}")
    return n


@pytest.fixture(scope="module")
def reader(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    with sdk_target(tmp_path_factory.mktemp("logs-home"), api_url=server.address):
        reader = Reader()
        yield reader
        reader.close()


def _lines(reader: Reader, **filters: str) -> list[tuple[str, str, str | None]]:
    """(message, flow_run_id, task_run_id) of the stored lines the engine did not write."""
    return [
        (line.message, line.flow_run_id, line.task_run_id)
        for line in reader.client.list_logs(**filters)
        if line.message.startswith("user:")
    ]


def test_a_tasks_logger_and_prints_carry_its_task_run_id(reader: Reader) -> None:
    seen: dict[str, str] = {}

    @task(log_prints=True)
    def step(n: int) -> int:
        print(f"user: printed {n}")
        get_run_logger().info("user: logged %d", n)
        return n

    @flow(name=unique())
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        print("user: the flow's own print is not captured (its log_prints is off)")
        get_run_logger().warning("user: from the flow")
        return step(1) + step(2)

    assert pipeline() == 3
    run_id = seen["flow_run_id"]
    first, second = reader.client.list_task_runs(run_id)
    assert _lines(reader, flow_run_id=run_id) == [
        ("user: from the flow", run_id, None),
        ("user: printed 1", run_id, first.id),
        ("user: logged 1", run_id, first.id),
        ("user: printed 2", run_id, second.id),
        ("user: logged 2", run_id, second.id),
    ]
    assert _lines(reader, task_run_id=second.id) == [
        ("user: printed 2", run_id, second.id),
        ("user: logged 2", run_id, second.id),
    ]


def test_a_task_inherits_log_prints_from_its_flow_unless_it_says_otherwise(
    reader: Reader,
) -> None:
    seen: dict[str, str] = {}

    @task
    def inherits() -> None:
        print("user: inherited")

    @task(log_prints=False)
    def refuses() -> None:
        print("user: not captured")

    @flow(name=unique(), log_prints=True)
    def pipeline() -> None:
        seen["flow_run_id"] = current_run_id()
        inherits()
        refuses()

    pipeline()
    run_id = seen["flow_run_id"]
    inherited, _ = reader.client.list_task_runs(run_id)
    assert _lines(reader, flow_run_id=run_id) == [("user: inherited", run_id, inherited.id)]


def test_a_task_outside_any_flow_stores_its_lines_with_its_task_run(
    reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique("loose")

    @task(name=name, log_prints=True)
    def loose(n: int) -> int:
        print(f"user: alone {n}")
        get_run_logger().error("user: still alone")
        return n

    assert loose(7) == 7
    (task_run,) = reader.client.list_task_runs(task_key=loose.task_key)
    assert task_run.flow_run_id == ""
    assert _lines(reader, task_run_id=task_run.id) == [
        ("user: alone 7", "", task_run.id),
        ("user: still alone", "", task_run.id),
    ]
    assert "user: alone 7" not in capsys.readouterr().out  # it became a log line instead


@pytest.mark.parametrize("runner", ["threads", "processes"])
def test_submitted_tasks_lines_carry_their_own_task_run_ids(reader: Reader, runner: str) -> None:
    seen: dict[str, str] = {}

    @flow(name=unique(), task_runner=ProcessPoolTaskRunner(2) if runner == "processes" else None)
    def fan_out() -> list[int]:
        seen["flow_run_id"] = current_run_id()
        return shout.map([1, 2]).result()

    assert fan_out() == [1, 2]
    run_id = seen["flow_run_id"]
    names = {t.id: t.name for t in reader.client.list_task_runs(run_id)}
    lines = {
        (message, names[task_run_id or ""])
        for message, _, task_run_id in _lines(reader, flow_run_id=run_id)
    }
    assert lines == {("user: shout 1", "shout-0"), ("user: shout 2", "shout-1")}

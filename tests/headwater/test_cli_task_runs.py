"""``headwater task-run ls | inspect | logs`` and the task-run parts of ``headwater flow-run``,
run for real in subprocesses against a real server subprocess, on task runs a real flow made."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from headwater.client import HeadwaterClient
from test_cli import assert_one_error_line, cli_env, run_cli, section

pytestmark = pytest.mark.integration

#: A flow with a task that logs, one that fails after a retry, and a task outside any flow.
PRODUCER = textwrap.dedent(
    """
    import json, sys
    from headwater import flow, task
    from headwater.logging import get_run_logger
    from headwater.runtime import flow_run, task_run

    @task(log_prints=True)
    def ok(n: int) -> int:
        print(f"ok {n}")
        return n * 10

    @task(retries=1, retry_delay_seconds=0)
    def boom() -> None:
        raise ValueError("kaboom")

    @task(log_prints=True)
    def alone() -> str:
        get_run_logger().warning("on my own")
        return task_run.id

    @flow(name=sys.argv[1])
    def pipeline() -> str:
        ok(1)
        ok(2)
        boom(return_state=True)
        return flow_run.id

    print(json.dumps({"flow_run_id": pipeline(), "loose_id": alone()}))
    """
)

TIME = re.compile(r"\d\d:\d\d:\d\d\.\d\d\d")


@pytest.fixture(scope="module")
def made(sqlite_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the producer once; its run ids, and the home and address the CLI uses."""
    home = tmp_path_factory.mktemp("cli-task-runs")
    flow = f"cli-tasks-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER, flow],
        env=cli_env(sqlite_server.address, home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    ids: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return {**ids, "home": home, "address": sqlite_server.address}


def cli(made: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, api_url=made["address"], home=made["home"])


def rows(out: str) -> dict[str, list[str]]:
    """A table's rows by their first column (the task run's name), after the header."""
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}


def test_flow_run_inspect_lists_task_runs_with_states_and_times(made: dict[str, Any]) -> None:
    result = cli(made, "flow-run", "inspect", made["flow_run_id"])
    assert result.returncode == 0, result.stderr
    table = section(result.stdout, "Task runs (3)")
    assert table[0].split() == [
        "TASK", "RUN", "ID", "STATE", "RUNS", "STARTED", "ENDED", "DURATION", "RESULT"
    ]  # fmt: skip
    by_name = {line.split()[0]: line for line in table[1:]}
    assert set(by_name) == {"ok-0", "ok-1", "boom-0"}
    assert "Completed" in by_name["ok-0"] and "Failed" in by_name["boom-0"]
    assert by_name["boom-0"].split()[3] == "2"  # two attempts
    assert by_name["ok-1"].split()[-1] == "20"  # its JSON result
    assert by_name["boom-0"].split()[-1] == "-"
    for line in by_name.values():
        assert len(TIME.findall(line)) == 2  # started and ended
        assert line.split()[-2].endswith("s")  # the duration


def test_flow_run_logs_prints_task_lines_under_the_task_runs_name(made: dict[str, Any]) -> None:
    result = cli(made, "flow-run", "logs", made["flow_run_id"])
    assert result.returncode == 0, result.stderr
    assert "| Task run 'ok-0' - ok 1" in result.stdout
    assert "| Task run 'ok-1' - ok 2" in result.stdout


def test_flow_run_watch_prints_task_lines_under_the_task_runs_name(made: dict[str, Any]) -> None:
    result = cli(made, "flow-run", "watch", made["flow_run_id"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    printed = next(i for i, line in enumerate(lines) if line.endswith("| Task run 'ok-0' - ok 1"))
    started = next(i for i, line in enumerate(lines) if "task ok-0: Running" in line)
    # Logged after the task started; shipped before the flow's final state was accepted.
    assert started < printed < len(lines) - 2
    assert lines[-2].split()[-1] == "Completed"
    assert lines[-1] == "Flow run finished: Completed"


def test_task_run_ls_filters_by_flow_run_and_state_newest_first(made: dict[str, Any]) -> None:
    listed = cli(made, "task-run", "ls", "--flow-run", made["flow_run_id"])
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [
        "boom-0",
        "ok-1",
        "ok-0",
    ]
    failed = cli(made, "task-run", "ls", "--flow-run", made["flow_run_id"], "--state", "failed")
    assert list(rows(failed.stdout)) == ["boom-0"]
    latest = cli(made, "task-run", "ls", "--limit", "1")
    (only,) = rows(latest.stdout).values()
    assert only[1] == made["loose_id"]
    assert only[2] == "-"  # called outside any flow: no flow run
    # Named as Prefect names a loose run: the task's name and three characters of its key.
    assert re.fullmatch(r"alone-[0-9a-f]{3}", only[0]), only
    with HeadwaterClient(made["address"]) as client:
        name = client.get_flow_run(made["flow_run_id"]).name
    by_name = cli(made, "task-run", "ls", "--flow-run", name, "--state", "completed")
    assert sorted(rows(by_name.stdout)) == ["ok-0", "ok-1"]
    nothing = cli(made, "task-run", "ls", "--flow-run", made["flow_run_id"], "--state", "crashed")
    assert nothing.stdout.strip() == "No task runs found."


def test_task_run_inspect_shows_history_failure_and_parameters(made: dict[str, Any]) -> None:
    failed = rows(
        cli(made, "task-run", "ls", "--flow-run", made["flow_run_id"], "--state", "FAILED").stdout
    )
    result = cli(made, "task-run", "inspect", failed["boom-0"][1])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "builtins.ValueError: kaboom" in out
    history = [line.split()[2] for line in section(out, "State history")[1:]]
    assert history == ["Pending", "Running", "AwaitingRetry", "Retrying", "Failed"]
    assert made["flow_run_id"] in out


def test_task_run_inspect_and_logs_of_a_task_outside_any_flow(made: dict[str, Any]) -> None:
    result = cli(made, "task-run", "inspect", made["loose_id"])
    assert result.returncode == 0, result.stderr
    sheet = {line.split(None, 1)[0]: line for line in result.stdout.splitlines() if line}
    assert "called outside any flow" in sheet["Flow"]
    assert f'"{made["loose_id"]}"' in sheet["Result"]  # the JSON result, shown as it is
    assert section(result.stdout, "Logs (1)")[0].endswith("- on my own")
    # --follow on a task run that has ended prints its lines and returns.
    logs = cli(made, "task-run", "logs", "--follow", made["loose_id"])
    assert logs.returncode == 0, logs.stderr
    (line,) = logs.stdout.splitlines()
    assert "WARNING" in line and line.endswith("- on my own")


@pytest.mark.parametrize("command", ["inspect", "logs"])
def test_an_unknown_task_run_id_is_one_error_line(command: str, made: dict[str, Any]) -> None:
    missing = str(uuid.uuid4())
    assert_one_error_line(cli(made, "task-run", command, missing), missing, "task-run ls")
    assert_one_error_line(
        cli(made, "task-run", command, "ok-0"), "'ok-0' is not a task run id", "task-run ls"
    )


def test_an_unknown_flow_run_filter_is_one_error_line(made: dict[str, Any]) -> None:
    missing = str(uuid.uuid4())
    result = cli(made, "task-run", "ls", "--flow-run", missing)
    assert_one_error_line(result, f"No flow run has the id '{missing}'", "flow-run ls")

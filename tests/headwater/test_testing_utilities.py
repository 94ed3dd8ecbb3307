"""Prefect's testing idioms, with only the import changed: `prefect_test_harness` gives a test
run a service of its own, and `disable_run_logger` lets a task's ``.fn`` run alone.

The harness swaps the process's service and environment, so it runs in a child process; the
logger switch is checked here and, for what it stores, in that child too.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from headwater import task
from headwater.exceptions import MissingContextError
from headwater.logging import disable_run_logger, get_logger, get_run_logger
from test_cli import cli_env

#: Two harness blocks and what a test suite would check in them; prints a JSON summary.
HARNESS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from headwater import flow, get_client, task
    from headwater.logging import disable_run_logger, get_run_logger
    from headwater.runtime import flow_run
    from headwater.testing.utilities import prefect_test_harness

    @task
    def double(x):
        get_run_logger().info("doubling %s", x)
        return 2 * x

    @flow
    def pipeline(x):
        return flow_run.id, double(x)

    seen = {}
    with prefect_test_harness():
        seen["home"] = os.environ["HEADWATER_HOME"]
        seen["url_inside"] = os.environ.get("HEADWATER_API_URL")
        seen["database_inside"] = os.environ.get("HEADWATER_DATABASE_URL")
        logged, four = pipeline(3)
        with disable_run_logger():
            quiet, eight = pipeline(4)
        seen["results"] = [four, eight]
        with get_client(sync_client=True) as client:
            seen["states"] = sorted(run.state.name for run in client.list_flow_runs())
            seen["lines"] = [
                [line.message for line in client.list_logs(str(run_id))]
                for run_id in (logged, quiet)
            ]
    with prefect_test_harness():
        with get_client(sync_client=True) as client:
            seen["runs_in_second_block"] = len(client.list_flow_runs())
    seen["url_after"] = os.environ.get("HEADWATER_API_URL")
    seen["database_after"] = os.environ.get("HEADWATER_DATABASE_URL")
    seen["home_after"] = os.environ.get("HEADWATER_HOME")
    seen["home_removed"] = not os.path.exists(seen["home"])
    print(json.dumps(seen))
    """
)


def test_the_harness_gives_each_block_an_empty_service_of_its_own_then_puts_all_back(
    tmp_path: Path,
) -> None:
    env = cli_env("127.0.0.1:1", tmp_path)  # a service no test run may reach
    env["HEADWATER_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-c", HARNESS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])

    assert Path(seen["home"]).parent != tmp_path  # a temporary home, not the caller's
    assert (seen["url_inside"], seen["database_inside"]) == (None, None)
    assert seen["results"] == [6, 8]
    assert seen["states"] == ["Completed", "Completed"]
    # The run logger's line is stored for the first run; none at all under disable_run_logger.
    assert "doubling 3" in seen["lines"][0]
    assert seen["lines"][1] == []
    assert seen["runs_in_second_block"] == 0
    assert seen["url_after"] == "127.0.0.1:1"
    assert seen["database_after"] == env["HEADWATER_DATABASE_URL"]
    assert seen["home_after"] == str(tmp_path)
    assert seen["home_removed"]


@task
def double(x: int) -> int:
    get_run_logger().info("doubling %s", x)
    return 2 * x


def test_disable_run_logger_lets_a_tasks_fn_run_alone_and_puts_the_loggers_back() -> None:
    with pytest.raises(MissingContextError):
        double.fn(2)
    run_loggers = [logging.getLogger(n) for n in ("headwater.flow_runs", "headwater.task_runs")]
    with disable_run_logger():
        assert double.fn(2) == 4
        assert all(logger.disabled for logger in run_loggers)
        with disable_run_logger():  # nested: the outer block still silences them after
            pass
        assert all(logger.disabled for logger in run_loggers)
    assert not any(logger.disabled for logger in run_loggers)
    with pytest.raises(MissingContextError):
        double.fn(2)


def test_get_logger_names_loggers_under_headwater() -> None:
    assert get_logger().name == "headwater"
    assert get_logger("etl").name == "headwater.etl"
    assert get_logger("headwater.etl") is get_logger("etl")

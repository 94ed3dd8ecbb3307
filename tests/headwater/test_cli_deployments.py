"""``headwater deployment ls | inspect | run | pause | resume`` and ``headwater work-pool ls |
create``, run for real in subprocesses against a real server subprocess."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from headwater.client import HeadwaterClient
from test_cli import assert_one_error_line, cli_env, headwater_command, run_cli

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"limit": {"type": "integer"}}}


@pytest.fixture(scope="module")
def client(sqlite_server: Any) -> Any:
    with HeadwaterClient(sqlite_server.address) as sync_client:
        yield sync_client


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _cli(server: Any, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, api_url=server.address, home=home)


def test_work_pool_create_and_ls(sqlite_server: Any, tmp_path: Path) -> None:
    name = _unique("pool")
    created = _cli(sqlite_server, tmp_path, "work-pool", "create", name, "--concurrency-limit", "4")
    assert created.returncode == 0, created.stderr
    assert f"Created work pool {name}" in created.stdout
    listed = _cli(sqlite_server, tmp_path, "work-pool", "ls")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert row.split()[:5][1:4] == ["process", "ready", "4"]
    assert f"Queues of {name}" in listed.stdout
    again = _cli(sqlite_server, tmp_path, "work-pool", "create", name)
    assert_one_error_line(again, "already exists")
    bad = _cli(sqlite_server, tmp_path, "work-pool", "create", _unique("p"), "--type", "docker")
    assert_one_error_line(bad, "work_pool.type")


def test_deployment_ls_and_inspect(
    client: HeadwaterClient, sqlite_server: Any, tmp_path: Path
) -> None:
    flow = _unique("etl")
    pool = client.create_work_pool(_unique("pool"))
    deployment = client.create_deployment(
        name="nightly",
        flow_name=flow,
        work_pool_name=pool.name,
        parameters={"limit": 1},
        parameter_openapi_schema=SCHEMA,
        tags=["etl"],
        schedules=[_Every(3600)],
    )
    run = client.create_flow_run_from_deployment(deployment.id)

    listed = _cli(sqlite_server, tmp_path, "deployment", "ls", "--flow", flow)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "ID", "STATUS"]
    assert row.split()[:4] == [f"{flow}/nightly", deployment.id, "ready", f"{pool.name}/default"]
    assert "every 1:00:00" in row

    for reference in (f"{flow}/nightly", deployment.id):
        shown = _cli(sqlite_server, tmp_path, "deployment", "inspect", reference)
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout
        assert f"{flow}/nightly" in out and deployment.id in out
        assert "enforced (1 parameters)" in out
        assert "Schedules (1)" in out and deployment.schedules[0].id in out
        # The run made here, and any the scheduler made ahead for the hourly schedule meanwhile.
        recent = re.search(r"Recent runs \((\d+)\)\n(.*)", out, flags=re.S)
        assert recent is not None and run.id in recent.group(2)
        assert len(recent.group(2).strip().splitlines()) == 1 + int(recent.group(1))


class _Every:
    """A Prefect-shaped interval schedule."""

    def __init__(self, seconds: int) -> None:
        import datetime as dt

        self.interval = dt.timedelta(seconds=seconds)
        self.anchor_date = None
        self.cron = None
        self.rrule = None
        self.timezone = None
        self.active = True
        self.parameters: dict[str, Any] = {}


def test_run_merges_params_and_says_where_it_runs(
    client: HeadwaterClient, sqlite_server: Any, tmp_path: Path
) -> None:
    flow = _unique("etl")
    deployment = client.create_deployment(
        name="manual",
        flow_name=flow,
        parameters={"day": "mon", "limit": 1},
        parameter_openapi_schema=SCHEMA,
    )
    result = _cli(
        sqlite_server,
        tmp_path,
        "deployment",
        "run",
        "manual",
        "--param",
        "limit=5",
        "-p",
        "note=hello world",
        "--params",
        '{"extra": [1, 2]}',
        "--tag",
        "cli",
        "--flow-run-name",
        "from-cli",
    )
    assert result.returncode == 0, result.stderr
    assert "Created flow run from-cli" in result.stdout
    assert "the process serving this deployment" in result.stdout
    (run,) = client.list_flow_runs(deployment_id=deployment.id)
    assert run.parameters == {"day": "mon", "limit": 5, "note": "hello world", "extra": [1, 2]}
    assert run.tags == ("cli",) and run.name == "from-cli"
    assert f"headwater flow-run watch {run.id}" in result.stdout
    assert not run.auto_scheduled
    inspected = _cli(sqlite_server, tmp_path, "flow-run", "inspect", run.id)
    assert re.search(rf"^Deployment\s+{deployment.id}\s*$", inspected.stdout, re.M)

    refused = _cli(sqlite_server, tmp_path, "deployment", "run", f"{flow}/manual", "-p", "limit=x")
    assert_one_error_line(refused, "parameters_json.limit", "not of type 'integer'")
    malformed = _cli(sqlite_server, tmp_path, "deployment", "run", "manual", "-p", "limit")
    assert_one_error_line(malformed, "KEY=VALUE")


def test_run_gives_the_run_job_variables_of_its_own(
    client: HeadwaterClient, sqlite_server: Any, tmp_path: Path
) -> None:
    flow = _unique("etl")
    deployment = client.create_deployment(name="jobs", flow_name=flow)
    result = _cli(
        sqlite_server,
        tmp_path,
        "deployment",
        "run",
        f"{flow}/jobs",
        "--job-variable",
        'env={"STAGE": "test", "DROPPED": null}',
        "-jv",
        "working_dir=/srv/etl",
    )
    assert result.returncode == 0, result.stderr
    (run,) = client.list_flow_runs(deployment_id=deployment.id)
    expected = {"env": {"STAGE": "test", "DROPPED": None}, "working_dir": "/srv/etl"}
    assert run.job_variables == expected
    assert "Job variables:" in result.stdout

    malformed = _cli(sqlite_server, tmp_path, "deployment", "run", f"{flow}/jobs", "-jv", "env")
    assert_one_error_line(malformed, "--job-variable", "KEY=VALUE")


def test_pause_and_resume(client: HeadwaterClient, sqlite_server: Any, tmp_path: Path) -> None:
    flow = _unique("etl")
    deployment = client.create_deployment(name="pausable", flow_name=flow)
    paused = _cli(sqlite_server, tmp_path, "deployment", "pause", f"{flow}/pausable")
    assert paused.returncode == 0, paused.stderr
    assert "paused" in paused.stdout
    assert client.get_deployment(deployment.id).paused
    refused = _cli(sqlite_server, tmp_path, "deployment", "run", f"{flow}/pausable")
    assert_one_error_line(refused, "is paused", "headwater deployment resume")
    resumed = _cli(sqlite_server, tmp_path, "deployment", "resume", deployment.id)
    assert resumed.returncode == 0, resumed.stderr
    assert not client.get_deployment(deployment.id).paused


def test_a_name_several_flows_use_or_none_uses_is_one_error_line(
    client: HeadwaterClient, sqlite_server: Any, tmp_path: Path
) -> None:
    shared = _unique("shared")
    first = client.create_deployment(name=shared, flow_name=_unique("a"))
    second = client.create_deployment(name=shared, flow_name=_unique("b"))
    ambiguous = _cli(sqlite_server, tmp_path, "deployment", "inspect", shared)
    assert_one_error_line(ambiguous, first.full_name, second.full_name)
    for missing in ("nothing-here", "no/such", str(uuid.uuid4())):
        result = _cli(sqlite_server, tmp_path, "deployment", "pause", missing)
        assert_one_error_line(result, "headwater deployment ls")


def test_run_watch_follows_the_run_until_it_ends(
    client: HeadwaterClient, sqlite_server: Any, tmp_path: Path
) -> None:
    from headwater.v1 import flow_runs_pb2, flow_runs_pb2_grpc, states_pb2

    flow = _unique("etl")
    deployment = client.create_deployment(name="watched", flow_name=flow)
    process = subprocess.Popen(
        [*headwater_command(), "deployment", "run", f"{flow}/watched", "--watch"],
        env=cli_env(sqlite_server.address, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def play_the_worker() -> None:
        """What a worker would do: take the run and finish it."""
        while not (runs := client.list_flow_runs(deployment_id=deployment.id)):
            time.sleep(0.05)
        with sqlite_server.channel() as channel:
            stub = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            for state in (
                states_pb2.STATE_TYPE_PENDING,
                states_pb2.STATE_TYPE_RUNNING,
                states_pb2.STATE_TYPE_COMPLETED,
            ):
                stub.SetFlowRunState(
                    flow_runs_pb2.SetFlowRunStateRequest(
                        flow_run_id=runs[0].id, state=states_pb2.State(type=state)
                    )
                )

    worker = threading.Thread(target=play_the_worker)
    worker.start()
    out, err = process.communicate(timeout=60)
    worker.join()
    assert process.returncode == 0, err
    assert "Created flow run" in out
    assert "Flow run finished: Completed" in out
    assert out.index("Running") < out.index("Flow run finished")


def test_empty_listings_say_so_and_what_to_do(tmp_path: Path) -> None:
    # No HEADWATER_API_URL: the CLI reads the local database of a fresh home.
    deployments = run_cli("deployment", "ls", api_url=None, home=tmp_path)
    assert deployments.returncode == 0, deployments.stderr
    assert deployments.stdout.strip() == "No deployments found."
    pools = run_cli("work-pool", "ls", api_url=None, home=tmp_path)
    assert pools.returncode == 0, pools.stderr
    assert "headwater work-pool create NAME" in pools.stdout

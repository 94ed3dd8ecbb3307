"""Serving flows and running a work pool's runs, end to end: a real server, a real serving
process (``my_flow.serve(...)`` in a script) or ``headwater worker start``, real subprocesses.

Runs are created through `headwater.deployments.run_deployment` (or the scheduler), claimed by
the serving process's long poll and run from the script's entrypoint under their own ids; a
cancelled run's subprocess is stopped; SIGTERM stops serving cleanly.
"""

from __future__ import annotations

import datetime
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import sdk_target
from headwater.client import HeadwaterClient
from headwater.deployments import run_deployment
from headwater.exceptions import ObjectNotFound
from process_support import alive
from server_harness import HEADWATER_CLI, ServerProcess

pytestmark = pytest.mark.integration

# Generous: the machine running the tests may be busy. Nothing here measures speed.
DEADLINE_SECONDS = 90.0

SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import time
    from pathlib import Path

    from headwater import flow, serve
    from headwater.runtime import flow_run

    HERE = Path(__file__).parent


    @flow
    def greet(name: str = "world", sleep: float = 0.0) -> str:
        (HERE / f"pid-{flow_run.id}").write_text(str(os.getpid()))
        started = time.time()
        time.sleep(sleep)
        (HERE / f"span-{flow_run.id}").write_text(f"{started} {time.time()}")
        (HERE / f"out-{flow_run.id}").write_text(f"hello {name}")
        return f"hello {name}"


    @flow
    def wave() -> None:
        (HERE / f"out-{flow_run.id}").write_text("wave")


    if __name__ == "__main__":
        mode = sys.argv[1]
        if mode == "serve":
            greet.serve(sys.argv[4], limit=int(sys.argv[2]), interval=float(sys.argv[3]))
        else:
            serve(greet.to_deployment(sys.argv[2]), wave.to_deployment(sys.argv[2]), limit=4)
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "served.py").write_text(SCRIPT)
    return tmp_path


@pytest.fixture
def client(sqlite_server: ServerProcess, tmp_path: Path) -> Iterator[HeadwaterClient]:
    with sdk_target(tmp_path / "home", sqlite_server.address), HeadwaterClient() as client:
        yield client


def _start(project: Path, server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HEADWATER_API_URL": server.address}
    return subprocess.Popen(
        args,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _until(condition: object, what: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the process exited ({process.returncode}): {output}")
        time.sleep(0.1)
    if process is not None:
        process.kill()
        output = process.communicate()[0]
        raise AssertionError(f"gave up waiting for {what}; the process wrote: {output}")
    raise AssertionError(f"gave up waiting for {what}")


def _registered(client: HeadwaterClient, name: str) -> bool:
    try:
        client.get_deployment(name)
    except ObjectNotFound:
        return False
    return True


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=DEADLINE_SECONDS)
    return output


@pytest.fixture
def name() -> str:
    return f"greeter-{os.urandom(4).hex()}"


@pytest.fixture
def served(
    project: Path, sqlite_server: ServerProcess, client: HeadwaterClient, name: str
) -> Iterator[subprocess.Popen[str]]:
    command = (sys.executable, "served.py", "serve", "1", "3600", name)
    process = _start(project, sqlite_server, *command)
    try:
        _until(lambda: _registered(client, f"greet/{name}"), "the deployment", process)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_served_flow_runs_a_run_of_its_deployment_under_the_run_id(
    served: subprocess.Popen[str], project: Path, client: HeadwaterClient, name: str
) -> None:
    run = run_deployment(f"greet/{name}", parameters={"name": "ada"}, timeout=DEADLINE_SECONDS)

    assert run.state is not None and run.state.is_completed(), run.state
    assert (project / f"out-{run.id}").read_text() == "hello ada"
    deployment = client.get_deployment(f"greet/{name}")
    assert run.deployment_id == deployment.id
    assert deployment.entrypoint == "served.py:greet"
    assert deployment.path == str(project)
    assert [s.interval for s in deployment.schedules] == [datetime.timedelta(hours=1)]
    states = [state.type.value for state in client.list_flow_run_states(run.id)]
    assert states == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]


def test_a_limit_of_one_runs_one_run_at_a_time(
    served: subprocess.Popen[str], project: Path, client: HeadwaterClient, name: str
) -> None:
    deployment = client.get_deployment(f"greet/{name}")
    runs = [
        client.create_flow_run_from_deployment(deployment.id, parameters={"sleep": 0.5})
        for _ in range(3)
    ]
    _until(lambda: all((project / f"span-{run.id}").exists() for run in runs), "three runs", served)

    spans = sorted(
        tuple(map(float, (project / f"span-{run.id}").read_text().split())) for run in runs
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans


def test_cancelling_a_served_run_stops_its_subprocess(
    served: subprocess.Popen[str], project: Path, client: HeadwaterClient, name: str
) -> None:
    deployment = client.get_deployment(f"greet/{name}")
    run = client.create_flow_run_from_deployment(deployment.id, parameters={"sleep": 600})
    pid_file = project / f"pid-{run.id}"
    _until(pid_file.exists, "the run to start", served)
    pid = int(pid_file.read_text())

    client.cancel_flow_run(run.id)

    _until(lambda: not alive(pid), "the run's process to end", served)
    _until(
        lambda: (state := client.get_flow_run(run.id).state) is not None and state.is_final(),
        "the run to end",
    )
    final = client.get_flow_run(run.id).state
    assert final is not None and final.is_cancelled(), final


def test_sigterm_stops_serving_cleanly_and_pauses_the_schedules(
    served: subprocess.Popen[str], project: Path, client: HeadwaterClient, name: str
) -> None:
    deployment = client.get_deployment(f"greet/{name}")
    run = client.create_flow_run_from_deployment(deployment.id, parameters={"sleep": 600})
    pid_file = project / f"pid-{run.id}"
    _until(pid_file.exists, "the run to start", served)

    output = _stop(served)

    assert served.returncode == 0, output
    assert "is being served" in output
    assert f"headwater deployment run 'greet/{name}'" in output
    assert not alive(int(pid_file.read_text()))
    final = client.get_flow_run(run.id).state
    assert final is not None and final.is_cancelled(), final
    schedules = client.get_deployment(deployment.id).schedules
    assert schedules and not any(schedule.active for schedule in schedules)


def test_serve_runs_several_deployments(
    project: Path, sqlite_server: ServerProcess, client: HeadwaterClient, name: str
) -> None:
    process = _start(project, sqlite_server, sys.executable, "served.py", "both", name)
    try:
        _until(lambda: _registered(client, f"wave/{name}"), "the deployments", process)
        greeted = run_deployment(f"greet/{name}", timeout=DEADLINE_SECONDS)
        waved = run_deployment(f"wave/{name}", timeout=DEADLINE_SECONDS)
        output = _stop(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert greeted.state is not None and greeted.state.is_completed()
    assert waved.state is not None and waved.state.is_completed()
    assert (project / f"out-{waved.id}").read_text() == "wave"
    assert f"greet/{name}" in output and f"wave/{name}" in output


def test_a_worker_runs_the_runs_of_its_pool(
    project: Path, sqlite_server: ServerProcess, client: HeadwaterClient
) -> None:
    pool = client.create_work_pool(f"pool-{os.urandom(4).hex()}")
    deployment = client.create_deployment(
        flow_name="greet",
        name=f"pooled-{pool.name}",
        entrypoint="served.py:greet",
        path=str(project),
        work_pool_name=pool.name,
    )
    worker = _start(
        Path("/"),
        sqlite_server,
        str(HEADWATER_CLI),
        "worker",
        "start",
        "--pool",
        pool.name,
        "--limit",
        "2",
    )
    try:
        run = run_deployment(deployment.id, parameters={"name": "pool"}, timeout=DEADLINE_SECONDS)
        output = _stop(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert run.state is not None and run.state.is_completed(), (run.state, output)
    assert (project / f"out-{run.id}").read_text() == "hello pool"
    assert worker.returncode == 0, output
    assert f"polling work pool '{pool.name}'" in output


def test_a_worker_of_an_unknown_pool_says_so(project: Path, sqlite_server: ServerProcess) -> None:
    worker = _start(
        project, sqlite_server, str(HEADWATER_CLI), "worker", "start", "--pool", "nowhere"
    )
    output, _ = worker.communicate(timeout=DEADLINE_SECONDS)
    assert worker.returncode == 2
    assert "work pool" in output and "nowhere" in output


def test_a_flow_served_on_a_one_second_interval_runs_and_completes_repeatedly(
    project: Path, sqlite_server: ServerProcess, client: HeadwaterClient, name: str
) -> None:
    command = (sys.executable, "served.py", "serve", "1", "1", name)
    process = _start(project, sqlite_server, *command)
    try:
        _until(lambda: _registered(client, f"greet/{name}"), "the deployment", process)
        deployment = client.get_deployment(f"greet/{name}")

        def completed() -> list[str]:
            runs = client.list_flow_runs(deployment_id=deployment.id, state_types=["COMPLETED"])
            return [run.id for run in runs]

        _until(lambda: len(completed()) >= 3, "three scheduled runs to complete", process)
        _stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    runs = completed()
    assert all((project / f"out-{run_id}").read_text() == "hello world" for run_id in runs)
    scheduled = [client.get_flow_run(run_id) for run_id in runs]
    assert all(run.raw.auto_scheduled for run in scheduled)

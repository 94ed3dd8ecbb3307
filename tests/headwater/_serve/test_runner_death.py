"""When a runner or one of its run processes dies: real processes, real SIGKILL, real servers.

A serving process (``headwater.serve``) runs a flow whose task holds a tag concurrency slot
under a deployment limit of one; the test kills processes with SIGKILL and reads what the
service stored through the public client. Killing the runner takes its run processes with it,
and the service ends their runs CRASHED and frees their slots; killing only a run's process
lets the runner end the run CRASHED and run the flow's ``on_crashed`` hooks. A worker killed
before its run started leaves the run PENDING; its lease runs out and another worker runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import sdk_target
from headwater.client import HeadwaterClient
from process_support import alive
from server_harness import (
    DATABASES,
    HEADWATER_CLI,
    ServerFactory,
    ServerProcess,
    database_url_for,
)

pytestmark = pytest.mark.integration

# Generous: the machine running the tests may be busy. Nothing here measures speed.
DEADLINE_SECONDS = 90.0

FAST_LIVENESS = {
    "HEADWATER_ENGINE_GRACE_SECONDS": "1",
    "HEADWATER_ENGINE_TIMEOUT_SECONDS": "2",
}

# Each test below expects one detector to end the run, so the others get far longer than the
# test takes: on a busy machine a 2 s timeout can run out before the server has recorded a
# closed stream, and a 1 s grace before the runner has reported its child's exit.
RUNNER_DIES = {**FAST_LIVENESS, "HEADWATER_ENGINE_TIMEOUT_SECONDS": "60"}
RUN_PROCESS_DIES = {
    "HEADWATER_ENGINE_GRACE_SECONDS": "60",
    "HEADWATER_ENGINE_TIMEOUT_SECONDS": "60",
}

SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import time
    from pathlib import Path

    from headwater import flow, serve, task
    from headwater.runtime import flow_run, task_run

    HERE = Path(__file__).parent


    def remember_crash(flow, run, state):
        (HERE / f"crashed-{run.id}").write_text(f"{run.id} {state.type.value} {os.getpid()}")


    @task
    def hold(seconds: float) -> None:
        (HERE / f"task-{flow_run.id}").write_text(task_run.id)
        (HERE / f"pid-{flow_run.id}").write_text(str(os.getpid()))
        time.sleep(seconds)


    @flow(on_crashed=[remember_crash])
    def slow(seconds: float = 600.0, tag: str = "") -> None:
        hold.with_options(tags=[tag] if tag else [])(seconds)


    if __name__ == "__main__":
        if len(sys.argv) == 2:
            serve(slow.to_deployment(sys.argv[1], concurrency_limit=1), limit=4)
        else:  # serve the deployment that exists, as it is
            from headwater._serve.runner import Runner

            Runner(limit=4, deployment_ids=[sys.argv[2]]).run_forever(
                on_ready=lambda: print("being served", flush=True)
            )
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "served.py").write_text(SCRIPT)
    return tmp_path


class Serving:
    """Serving processes of ``served.py`` (output to a file each), all killed at the end."""

    def __init__(self, project: Path, server: ServerProcess, name: str) -> None:
        self.project, self.server, self.name = project, server, name
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, *deployment_id: str) -> subprocess.Popen[str]:
        """Serve (creating the deployment), or run one of ``deployment_id`` as it is."""
        output = self.project / f"serving-{len(self.processes)}.log"
        with output.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "served.py", self.name, *deployment_id],
                cwd=self.project,
                env={**os.environ, "HEADWATER_API_URL": self.server.address},
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.processes.append(process)
        try:
            _until(lambda: "being served" in output.read_text(), "serving", process)
        except AssertionError as error:
            raise AssertionError(f"{error}; it wrote:\n{output.read_text()}") from None
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def _until(condition: Callable[[], Any], what: str, process: Any = None) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _final(client: HeadwaterClient, run_id: str) -> Any:
    def ended() -> Any:
        state = client.get_flow_run(run_id).state
        return state if state is not None and state.is_final() else None

    return _until(ended, f"flow run {run_id} to end")


@pytest.fixture
def liveness() -> dict[str, str]:
    """The server's liveness settings; a test parametrizes this to override them."""
    return RUNNER_DIES


@pytest.fixture
def serving(
    request: pytest.FixtureRequest,
    project: Path,
    make_server: ServerFactory,
    tmp_path: Path,
    liveness: dict[str, str],
) -> Iterator[tuple[Serving, HeadwaterClient]]:
    database = getattr(request, "param", "sqlite")
    server = make_server(database_url_for(database, request), env=liveness)
    runner = Serving(project, server, f"slow-{os.urandom(4).hex()}")
    with sdk_target(tmp_path / "home", server.address), HeadwaterClient() as client:
        try:
            yield runner, client
        finally:
            runner.close()


@pytest.mark.parametrize("serving", DATABASES, indirect=True)
def test_kill_9_of_a_runner_ends_its_runs_crashed_and_frees_their_slots(
    serving: tuple[Serving, HeadwaterClient], project: Path
) -> None:
    runner, client = serving
    tag = f"tag-{os.urandom(4).hex()}"
    client.create_concurrency_limit(tag, 1)
    process = runner.start()
    deployment = client.get_deployment(f"slow/{runner.name}")
    run = client.create_flow_run_from_deployment(deployment.id, parameters={"tag": tag})
    pid_file = project / f"pid-{run.id}"
    _until(pid_file.exists, "the run's task to start", process)
    task_run_id = (project / f"task-{run.id}").read_text()
    assert client.get_concurrency_limit(tag).active_slots == (task_run_id,)

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    # The run's process died with its runner: nothing is left holding the slots.
    _until(lambda: not alive(int(pid_file.read_text())), "the run's process to die")
    final = _final(client, run.id)
    assert final.is_crashed(), final
    assert "lost its connection to the service" in (final.message or "")
    assert client.get_task_run(task_run_id).state.type.value == "CRASHED"
    assert client.get_concurrency_limit(tag).active_slots == ()
    # The deployment's one slot is free too: the next run of it starts and completes (a
    # leaked slot would keep it waiting, AwaitingConcurrencySlot, until the deadline).
    runner.start(deployment.id)
    again = client.create_flow_run_from_deployment(
        deployment.id, parameters={"seconds": 0.0, "tag": tag}
    )
    assert _final(client, again.id).is_completed()
    # The killed runner could not run on_crashed hooks; nothing else ran them either.
    assert not (project / f"crashed-{run.id}").exists()


@pytest.mark.parametrize("liveness", [RUN_PROCESS_DIES])
def test_a_killed_run_process_ends_crashed_and_the_runner_runs_its_on_crashed_hooks(
    serving: tuple[Serving, HeadwaterClient], project: Path
) -> None:
    runner, client = serving
    process = runner.start()
    deployment = client.get_deployment(f"slow/{runner.name}")
    run = client.create_flow_run_from_deployment(deployment.id)
    pid_file = project / f"pid-{run.id}"
    _until(pid_file.exists, "the run's task to start", process)
    run_pid = int(pid_file.read_text())

    os.kill(run_pid, signal.SIGKILL)

    final = _final(client, run.id)
    assert final.is_crashed(), final
    assert "exited with code -9" in (final.message or "")
    marker = project / f"crashed-{run.id}"
    _until(marker.exists, "the on_crashed hook to run", process)
    hook_run_id, hook_state, hook_pid = marker.read_text().split()
    assert (hook_run_id, hook_state) == (run.id, "CRASHED")
    # The hook ran in a new process, not in the runner (which does not import the flow's code).
    assert int(hook_pid) not in (run_pid, process.pid)
    assert process.poll() is None


POOLED = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from headwater import flow

    HERE = Path(__file__).parent
    if (HERE / "slow-import").exists():  # the first worker's run never gets past its import
        (HERE / f"importing-{os.getpid()}").write_text("")
        time.sleep(600)


    @flow
    def pooled() -> None:
        (HERE / "ran").write_text(str(os.getpid()))
    """
)


def _worker(project: Path, server: ServerProcess, pool: str, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as sink:
        return subprocess.Popen(
            [str(HEADWATER_CLI), "worker", "start", "--pool", pool],
            cwd=project,
            env={**os.environ, "HEADWATER_API_URL": server.address},
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.mark.parametrize("database", DATABASES)
def test_runs_claimed_by_a_killed_worker_go_back_to_scheduled_for_another_worker(
    database: str,
    request: pytest.FixtureRequest,
    make_server: ServerFactory,
    project: Path,
    tmp_path: Path,
) -> None:
    server = make_server(
        database_url_for(database, request),
        env={**FAST_LIVENESS, "HEADWATER_WORKER_LEASE_SECONDS": "2"},
    )
    (project / "pooled.py").write_text(POOLED)
    (project / "slow-import").write_text("")
    workers: list[subprocess.Popen[str]] = []
    with sdk_target(tmp_path / "home", server.address), HeadwaterClient() as client:
        try:
            pool = client.create_work_pool(f"pool-{os.urandom(4).hex()}")
            deployment = client.create_deployment(
                flow_name="pooled",
                name="leased",
                entrypoint="pooled.py:pooled",
                path=str(project),
                work_pool_name=pool.name,
            )
            workers.append(_worker(project, server, pool.name, project / "worker-a.log"))
            run = client.create_flow_run_from_deployment(deployment.id)
            importing = _until(
                lambda: list(project.glob("importing-*")), "the run's process", workers[0]
            )
            run_pid = int(importing[0].name.removeprefix("importing-"))
            claimed = client.get_flow_run(run.id).state
            assert claimed is not None and claimed.type.value == "PENDING", claimed

            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=10)
            _until(lambda: not alive(run_pid), "the run's process to die with its worker")
            (project / "slow-import").unlink()
            workers.append(_worker(project, server, pool.name, project / "worker-b.log"))

            final = _final(client, run.id)
            states = client.list_flow_run_states(run.id)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                worker.wait(timeout=30)
    assert final.is_completed(), (final, (project / "worker-b.log").read_text())
    assert [state.type.value for state in states] == [
        "SCHEDULED",
        "PENDING",
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    first = (states[1].message or "").removeprefix("Claimed by ").removesuffix(".")
    second = (states[3].message or "").removeprefix("Claimed by ").removesuffix(".")
    assert first and second and first != second
    rescheduled = states[2].message or ""
    assert rescheduled.startswith(f"Rescheduled: {first} claimed this run"), rescheduled
    assert "HEADWATER_WORKER_LEASE_SECONDS" in rescheduled
    assert int((project / "ran").read_text()) != run_pid

"""A runner reports the final state of a run whose process it lost until the service hears it.

A real `Runner` (in this process, on a thread) works a pool's runs from a real server
subprocess, reached through a real TCP proxy (`tcp_proxy.PausableProxy`) that the test cuts
off and restores. The run's process dies before it ever reaches the service (its flow's file
exits while being loaded), so only the runner can end the run: while the proxy is cut off, its
report fails UNAVAILABLE, and it must keep trying, in the background, until the service
answers. What the service stored is read straight from the server, through the public client.
"""

from __future__ import annotations

import logging
import os
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from headwater._serve.runner import Runner
from headwater._transport.client_workers import WorkerConnection
from headwater.client import HeadwaterClient
from headwater.v1 import flow_runs_pb2, flow_runs_pb2_grpc
from process_support import alive
from server_harness import ServerFactory, ServerProcess
from tcp_proxy import PausableProxy

pytestmark = pytest.mark.integration

# Generous: the machine running the tests may be busy. Nothing here measures speed.
DEADLINE_SECONDS = 90.0

# Its run's process dies while loading it, once the test says so (never while running the
# flow's on_crashed hooks in a process of their own).
DOOMED = textwrap.dedent(
    """
    import os
    import sys
    import time
    from pathlib import Path

    from headwater import flow

    HERE = Path(__file__).parent
    if "--on-crashed" not in sys.argv:
        (HERE / f"loading-{os.getpid()}").write_text("")
        while not (HERE / "die").exists():
            time.sleep(0.05)
        os._exit(3)


    @flow
    def doomed() -> None:
        pass
    """
)


def _until(
    condition: Callable[[], Any], what: str, context: Callable[[], object] | None = None
) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    said = f"; meanwhile: {context()}" if context is not None else ""
    raise AssertionError(f"gave up waiting for {what}{said}")


@dataclass
class Setting:
    """A runner working a pool through the proxy, and the public client to the server."""

    project: Path
    server: ServerProcess
    proxy: PausableProxy
    client: HeadwaterClient
    runner: Runner
    thread: threading.Thread
    pool: str
    deployment_id: str
    caplog: pytest.LogCaptureFixture

    def stop(self) -> None:
        """Stop the runner and wait until it returned."""
        self.runner.stop()
        self.thread.join(timeout=DEADLINE_SECONDS)
        assert not self.thread.is_alive(), "the runner did not stop"

    def lines(self, flow_run_id: str) -> list[str]:
        """The runner's log lines about one run, in order."""
        return [
            record.getMessage()
            for record in self.caplog.records
            if record.name == "headwater.runner" and flow_run_id in record.getMessage()
        ]

    def run_dies_unheard(self) -> str:
        """A run whose process dies while the service is cut off from the runner, once the
        runner's report of it failed at least once; its id."""
        run = self.client.create_flow_run_from_deployment(self.deployment_id)
        _until(lambda: list(self.project.glob("loading-*")), "the run's process to load its flow")
        assert self.client.get_flow_run(run.id).state.type.value == "PENDING"
        self.proxy.pause()
        (self.project / "die").write_text("")
        _until(
            lambda: any(line.startswith("Could not end") for line in self.lines(run.id)),
            "the runner's report to fail",
        )
        return run.id


def _setting(
    project: Path, server: ServerProcess, caplog: pytest.LogCaptureFixture, **runner: Any
) -> Iterator[Setting]:
    caplog.set_level(logging.DEBUG, logger="headwater.runner")
    (project / "doomed.py").write_text(DOOMED)
    proxy = PausableProxy(server.address).start()
    with HeadwaterClient(server.address) as client:
        pool = client.create_work_pool(f"pool-{os.urandom(4).hex()}")
        deployment = client.create_deployment(
            flow_name="doomed",
            name=f"unheard-{os.urandom(4).hex()}",
            entrypoint="doomed.py:doomed",
            path=str(project),
            work_pool_name=pool.name,
        )
        worker = Runner(work_pool_name=pool.name, address=proxy.address, **runner)
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        try:
            yield Setting(
                project, server, proxy, client, worker, thread, pool.name, deployment.id, caplog
            )
        finally:
            proxy.resume()
            worker.stop()
            thread.join(timeout=DEADLINE_SECONDS)
            proxy.close()


@pytest.fixture
def setting(
    tmp_path: Path, sqlite_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> Iterator[Setting]:
    yield from _setting(tmp_path, sqlite_server, caplog)


def _final(client: HeadwaterClient, flow_run_id: str) -> Any:
    def ended() -> Any:
        state = client.get_flow_run(flow_run_id).state
        return state if state is not None and state.is_final() else None

    return _until(ended, f"flow run {flow_run_id} to end")


def test_a_run_whose_process_died_unheard_ends_crashed_once_the_service_is_back(
    setting: Setting,
) -> None:
    run_id = setting.run_dies_unheard()
    # The report keeps failing while the service is cut off; the runner goes on meanwhile.
    assert setting.client.get_flow_run(run_id).state.type.value == "PENDING"

    setting.proxy.resume()

    final = _final(setting.client, run_id)
    assert final.is_crashed(), final
    assert "exited with code 3" in (final.message or "")
    states = setting.client.list_flow_run_states(run_id)
    assert [state.type.value for state in states] == ["SCHEDULED", "PENDING", "CRASHED"]
    _until(
        lambda: any(line.startswith("Ended flow run") for line in setting.lines(run_id)),
        "the runner to say it ended the run",
    )


@pytest.fixture
def long_lease(
    tmp_path: Path, make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> Iterator[Setting]:
    # Longer than a report's call waits for its answer (10 s): the heartbeats hang with it,
    # and the default lease (10 s) would hand the run to be run again meanwhile.
    server = make_server(env={"HEADWATER_WORKER_LEASE_SECONDS": "60"})
    yield from _setting(tmp_path, server, caplog)


def test_a_report_that_runs_into_its_deadline_is_tried_again_until_the_service_answers(
    long_lease: Setting,
) -> None:
    setting = long_lease
    run = setting.client.create_flow_run_from_deployment(setting.deployment_id)
    _until(lambda: list(setting.project.glob("loading-*")), "the run's process to load its flow")
    # The path to the service hangs instead of failing: the report's call waits for an answer
    # until its deadline, which is as passing as a refused connection.
    setting.proxy.stall()
    (setting.project / "die").write_text("")
    _until(
        lambda: any(
            line.startswith("Could not end") and "DEADLINE_EXCEEDED" in line
            for line in setting.lines(run.id)
        ),
        "the runner's report to run into its deadline",
        lambda: setting.lines(run.id),
    )

    setting.proxy.resume()

    final = _final(setting.client, run.id)
    assert final.is_crashed(), final
    assert "exited with code 3" in (final.message or "")
    states = setting.client.list_flow_run_states(run.id)
    assert [state.type.value for state in states] == ["SCHEDULED", "PENDING", "CRASHED"], [
        (state.type.value, state.message) for state in states
    ]


SLEEPY = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from headwater import flow
    from headwater.runtime import flow_run

    HERE = Path(__file__).parent


    @flow
    def sleepy() -> None:
        (HERE / f"running-{flow_run.id}").write_text(str(os.getpid()))
        time.sleep(600)
    """
)


def test_a_run_cancelled_while_its_runner_is_cut_off_stops_once_the_service_is_back(
    setting: Setting,
) -> None:
    (setting.project / "sleepy.py").write_text(SLEEPY)
    deployment = setting.client.create_deployment(
        flow_name="sleepy",
        name=f"cut-off-{os.urandom(4).hex()}",
        entrypoint="sleepy.py:sleepy",
        path=str(setting.project),
        work_pool_name=setting.pool,
    )
    run = setting.client.create_flow_run_from_deployment(deployment.id)
    marker = setting.project / f"running-{run.id}"
    _until(marker.exists, "the run to start")
    pid = int(marker.read_text())

    # The runner and the run's process both reach the service through the proxy: neither
    # hears of the cancellation while it is cut off, and the run goes on meanwhile.
    setting.proxy.pause()
    cancelling = setting.client.cancel_flow_run(run.id)
    assert cancelling.state is not None and cancelling.state.type.value == "CANCELLING"
    time.sleep(1.0)
    assert alive(pid)

    setting.proxy.resume()

    _until(lambda: not alive(pid), "the run's process to stop", lambda: setting.lines(run.id))
    final = _final(setting.client, run.id)
    assert final.is_cancelled(), final


def _delete(server: ServerProcess, flow_run_id: str) -> None:
    with server.channel() as channel:
        flow_runs_pb2_grpc.FlowRunServiceStub(channel).DeleteFlowRun(
            flow_runs_pb2.DeleteFlowRunRequest(flow_run_id=flow_run_id), timeout=30
        )


@pytest.mark.parametrize(
    ("meanwhile", "said"),
    [
        pytest.param("cancel", "it already ended CANCELLED", id="ended-meanwhile"),
        pytest.param("delete", "It no longer exists", id="deleted-meanwhile"),
    ],
)
def test_a_definitive_answer_ends_the_retries_and_says_why(
    setting: Setting, meanwhile: str, said: str
) -> None:
    run_id = setting.run_dies_unheard()
    # While the runner cannot reach it, someone else settles the run with the service.
    if meanwhile == "cancel":
        setting.client.cancel_flow_run(run_id)
    else:
        _delete(setting.server, run_id)

    setting.proxy.resume()

    last = _until(
        lambda: [line for line in setting.lines(run_id) if said in line], "the runner to give up"
    )
    assert len(last) == 1, last
    if meanwhile == "cancel":
        states = setting.client.list_flow_run_states(run_id)
        assert [state.type.value for state in states] == ["SCHEDULED", "PENDING", "CANCELLED"]
    # Nothing more is tried for it: the runner stops with no report left under way.
    setting.stop()
    lines = setting.lines(run_id)
    assert lines.index(last[0]) == len(lines) - 1, lines


@pytest.fixture
def short_lease(
    tmp_path: Path, make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> Iterator[Setting]:
    server = make_server(env={"HEADWATER_WORKER_LEASE_SECONDS": "2"})
    yield from _setting(tmp_path, server, caplog, end_grace_seconds=0.5)


def test_a_run_a_stopped_runner_could_not_end_is_named_and_the_service_takes_it_over(
    short_lease: Setting,
) -> None:
    setting = short_lease
    run_id = setting.run_dies_unheard()
    run = setting.client.get_flow_run(run_id)

    setting.stop()  # while the service is still cut off from it

    given_up = [line for line in setting.lines(run_id) if line.startswith("Stopping without")]
    assert len(given_up) == 1, setting.lines(run_id)
    assert f"flow run {run_id} ({run.name!r}) should end CRASHED" in given_up[0]
    # Its lease lapses with its heartbeats, and the service gives the run to be run again
    # rather than leave it PENDING.
    rescheduled = _until(
        lambda: (
            (state := setting.client.get_flow_run(run_id).state).type.value == "SCHEDULED" and state
        ),
        "the service to take the run back",
    )
    assert (rescheduled.message or "").startswith("Rescheduled:"), rescheduled


def test_a_run_claimed_again_after_the_lease_lapsed_is_left_to_its_new_claim(
    short_lease: Setting,
) -> None:
    setting = short_lease
    run_id = setting.run_dies_unheard()
    # Unheard of for longer than its lease, the runner loses its claim: the run goes back to
    # SCHEDULED and another worker claims it, all while the runner's report still fails.
    _until(
        lambda: setting.client.get_flow_run(run_id).state.type.value == "SCHEDULED",
        "the service to take the run back",
    )
    other = WorkerConnection("the other worker", setting.server.address, str(uuid.uuid4()))
    stop_beating = threading.Event()
    try:
        claimed = other.poll(max_runs=1, wait=30, work_pool_name=setting.pool)
        assert [run.flow_run.id for run in claimed.runs] == [run_id]
        # The other worker keeps its claim, as a live worker does: with no heartbeat its lease
        # (2 s) would lapse before the runner's next attempt (up to 10 s away), the run would go
        # back to SCHEDULED, and the runner would claim and run it again itself.
        beating = threading.Thread(
            target=_beat, args=(other, [run_id], claimed.claims, stop_beating), daemon=True
        )
        beating.start()

        setting.proxy.resume()

        _until(
            lambda: any("to its new claim" in line for line in setting.lines(run_id)),
            "the runner to give up its report",
            # What the runner said of the run, and its states, if this ever times out again.
            lambda: (
                setting.lines(run_id),
                [(s.type.value, s.message) for s in setting.client.list_flow_run_states(run_id)],
            ),
        )
    finally:
        stop_beating.set()
        other.close()
    state = setting.client.get_flow_run(run_id).state
    assert (state.type.value, state.message) == ("PENDING", "Claimed by the other worker.")


def _beat(worker: WorkerConnection, held: list[str], claims: int, stop: threading.Event) -> None:
    """Send ``worker``'s heartbeats, holding ``held``, every 0.25 s until ``stop``."""
    while not stop.wait(0.25):
        worker.send_heartbeat(held, lambda _to_stop, _error: None, claims_seen=claims)


@pytest.mark.parametrize(
    ("job_variables", "said"),
    [
        pytest.param({"env": "oops"}, "its job variables are unusable", id="unusable-job"),
        pytest.param(
            # A variable a spare read at start-up needs a fresh process, which cannot start in
            # a directory that does not exist.
            {"working_dir": "/nonexistent/headwater", "env": {"PYTHONHASHSEED": "1"}},
            "the runner could not start it",
            id="spawn-failure",
        ),
    ],
)
def test_a_run_the_runner_could_not_start_ends_crashed(
    setting: Setting, job_variables: dict[str, Any], said: str
) -> None:
    run = setting.client.create_flow_run_from_deployment(
        setting.deployment_id, job_variables=job_variables
    )

    final = _final(setting.client, run.id)
    assert final.is_crashed(), final
    assert said in (final.message or ""), final
    assert not list(setting.project.glob("loading-*"))

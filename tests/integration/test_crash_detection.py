"""Crash detection through real processes: kill -9 a flow process and watch the service notice.

Each test starts a real server subprocess with short liveness settings, runs a real flow in
another real process, kills it with SIGKILL (nothing in the victim gets to say goodbye), and
reads what the service stored through the public client. Nothing is mocked: the signal, the
broken stream, the server's reaper and the stored states are all real.
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

import grpc
import pytest
from headwater.client import HeadwaterClient
from headwater.v1 import (
    engine_pb2,
    engine_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    flows_pb2,
    flows_pb2_grpc,
    states_pb2,
)
from server_harness import DATABASES, ServerFactory, ServerProcess, database_url_for

#: How long a test waits for the service to settle a run (the settings below make it ~2 s).
SETTLE_SECONDS = 30.0

FAST_LIVENESS = {
    "HEADWATER_ENGINE_GRACE_SECONDS": "1",
    "HEADWATER_ENGINE_TIMEOUT_SECONDS": "2",
    "HEADWATER_CANCELLING_TIMEOUT_SECONDS": "1",
}

# For a test that expects the closed stream to end the run: on a busy machine a 2 s timeout can
# run out before the server has recorded the stream closed, and then the timeout ends it.
DISCONNECT_ONLY = {**FAST_LIVENESS, "HEADWATER_ENGINE_TIMEOUT_SECONDS": "60"}

# A flow that starts a task which sleeps far longer than any test waits; it prints its run ids
# once the task is RUNNING (the task's code prints them, so the service has accepted both).
VICTIM = textwrap.dedent(
    """
    import sys, time
    from headwater import flow, task
    from headwater.runtime import flow_run, task_run

    @task
    def sleeper():
        print("RUNNING", flow_run.id, task_run.id, flush=True)
        time.sleep(600)

    @flow
    def victim():
        sleeper()

    victim()
    """
)


class Victim:
    """A flow process under test: started, waited for until its task runs, then killed."""

    def __init__(self, script: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("RUNNING"):
            self.process.kill()
            _, err = self.process.communicate()
            raise AssertionError(f"The victim flow did not start: {line!r}\n{err}")
        _, self.flow_run_id, self.task_run_id = line.split()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to report anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        """Kill the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture
def victims(tmp_path: Path) -> Iterator[Callable[..., Victim]]:
    started: list[Victim] = []

    def start(env: dict[str, str], script: str = VICTIM) -> Victim:
        victim = Victim(script, {**os.environ, **env}, tmp_path)
        started.append(victim)
        return victim

    yield start
    for victim in started:
        victim.close()


def _client_env(server: ServerProcess) -> dict[str, str]:
    return {"HEADWATER_API_URL": server.address, "PYTHONUNBUFFERED": "1"}


def _wait_for(read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + SETTLE_SECONDS
    value = read()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {SETTLE_SECONDS} s: {value!r}")
        time.sleep(0.1)
        value = read()
    return value


@pytest.mark.parametrize("database", DATABASES)
def test_kill_9_of_a_flow_process_ends_its_flow_run_and_task_run_crashed(
    database: str,
    request: pytest.FixtureRequest,
    make_server: ServerFactory,
    victims: Callable[..., Victim],
) -> None:
    server = make_server(database_url_for(database, request), env=DISCONNECT_ONLY)
    victim = victims(_client_env(server))
    victim.kill()
    with HeadwaterClient(server.address) as client:
        run = _wait_for(
            lambda: client.get_flow_run(victim.flow_run_id),
            lambda r: r.state.is_final(),
            "the killed flow run ending",
        )
        assert run.state.type.value == "CRASHED"
        assert f"pid {victim.process.pid}" in (run.state.message or "")
        assert "HEADWATER_ENGINE_GRACE_SECONDS" in (run.state.message or "")
        task_run = client.get_task_run(victim.task_run_id)
        assert task_run.state.type.value == "CRASHED"
        # The task run ended no later than its flow run: the flow's final state came last.
        events = client.list_flow_run_events(victim.flow_run_id)
        finals = [
            (event.task_run_id, state.type.value)
            for event in events
            if (state := event.state or event.task_run_state) is not None and state.is_final()
        ]
        assert finals == [(victim.task_run_id, "CRASHED"), ("", "CRASHED")]
    assert "lost its connection to the service" in server.output()


def test_cancelling_a_killed_flow_run_ends_it_cancelled(
    make_server: ServerFactory, victims: Callable[..., Victim]
) -> None:
    # A longer grace, so the cancel lands while the run is still RUNNING (it goes CANCELLING).
    server = make_server(env={**FAST_LIVENESS, "HEADWATER_ENGINE_GRACE_SECONDS": "3"})
    victim = victims(_client_env(server))
    victim.kill()
    with HeadwaterClient(server.address) as client:
        cancelling = client.cancel_flow_run(victim.flow_run_id, reason="stop it")
        assert cancelling.state.type.value == "CANCELLING"
        run = _wait_for(
            lambda: client.get_flow_run(victim.flow_run_id),
            lambda r: r.state.is_final(),
            "the killed, cancelled flow run ending",
        )
        assert run.state.type.value == "CANCELLED"
        assert "while it was being cancelled" in (run.state.message or "")
        assert client.get_task_run(victim.task_run_id).state.type.value == "CRASHED"


def test_a_run_survives_a_server_restart_shorter_than_the_timeout(
    make_server: ServerFactory, victims: Callable[..., Victim]
) -> None:
    # The server stops cleanly (no disconnect recorded) and comes back: the engine reconnects,
    # and its run finishes normally instead of being taken for crashed.
    server = make_server(env={**FAST_LIVENESS, "HEADWATER_ENGINE_TIMEOUT_SECONDS": "5"})
    script = VICTIM.replace("time.sleep(600)", "time.sleep(4)")
    victim = victims(_client_env(server), script)
    server.restart()
    assert victim.process.wait(timeout=60) == 0, victim.process.communicate()
    with HeadwaterClient(server.address) as client:
        assert client.get_flow_run(victim.flow_run_id).state.type.value == "COMPLETED"
        assert client.get_task_run(victim.task_run_id).state.type.value == "COMPLETED"


def test_a_killed_process_with_the_embedded_server_is_found_by_the_next_server(
    tmp_path: Path, make_server: ServerFactory, victims: Callable[..., Victim]
) -> None:
    # The victim runs the embedded server on its own SQLite file, so its server dies with it
    # and nobody sees its stream break: the next server on that file finds it unrefreshed.
    home = tmp_path / "shared-home"
    victim = victims({"HEADWATER_HOME": str(home), **FAST_LIVENESS, "HEADWATER_API_URL": ""})
    victim.kill()
    server = make_server(home=home, env=FAST_LIVENESS)
    with HeadwaterClient(server.address) as client:
        run = _wait_for(
            lambda: client.get_flow_run(victim.flow_run_id),
            lambda r: r.state.is_final(),
            "the next server ending the killed embedded run",
        )
        assert run.state.type.value == "CRASHED"
        assert "HEADWATER_ENGINE_TIMEOUT_SECONDS" in (run.state.message or "")
        assert client.get_task_run(victim.task_run_id).state.type.value == "CRASHED"


def test_a_cancelling_run_no_engine_runs_ends_cancelled_after_the_timeout(
    make_server: ServerFactory,
) -> None:
    # Started through the unary API (as another language's client might): no stream owns it.
    server = make_server(env=FAST_LIVENESS)
    with server.channel() as channel:
        flow = flows_pb2_grpc.FlowServiceStub(channel).CreateFlow(
            flows_pb2.CreateFlowRequest(name="unary-flow")
        )
        runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
        run = runs.CreateFlowRun(flow_runs_pb2.CreateFlowRunRequest(flow_id=flow.flow.id)).flow_run
        runs.SetFlowRunState(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run.id, state=states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING)
            )
        )
        cancelled = runs.CancelFlowRun(flow_runs_pb2.CancelFlowRunRequest(flow_run_id=run.id))
        assert cancelled.flow_run.state.type == states_pb2.STATE_TYPE_CANCELLING
        final = _wait_for(
            lambda: runs.GetFlowRun(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)).flow_run,
            lambda r: r.state.type != states_pb2.STATE_TYPE_CANCELLING,
            "the abandoned cancellation ending",
        )
    assert final.state.type == states_pb2.STATE_TYPE_CANCELLED
    assert "HEADWATER_CANCELLING_TIMEOUT_SECONDS" in final.state.message


def test_a_malformed_engine_id_is_refused_with_invalid_argument(
    make_server: ServerFactory,
) -> None:
    server = make_server()
    with server.channel() as channel:
        stub = engine_pb2_grpc.EngineServiceStub(channel)
        responses = stub.Connect(
            iter([engine_pb2.ConnectRequest()]),
            metadata=(("headwater-engine-id", "not-a-uuid"),),
            timeout=10,
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(responses)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not-a-uuid" in caught.value.details()
    assert "headwater-engine-id" in caught.value.details()

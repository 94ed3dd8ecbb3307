"""The scheduler inside real servers: runs of deployment schedules appear ahead of time, pausing
removes them, and two servers on one PostgreSQL create every (schedule, time) exactly once.

The servers pass every 0.05 s and keep at most 10 runs per schedule ahead; the tests wait for
what they expect by polling with a deadline, so they assert what happened, not how fast.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from headwater.v1 import (
    deployments_pb2,
    deployments_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    schedules_pb2,
)
from server_harness import DATABASES, ServerFactory, ServerProcess, database_url_for

pytestmark = pytest.mark.integration

D = deployments_pb2
SCHEDULER_SETTINGS = {
    "HEADWATER_SCHEDULER_LOOP_SECONDS": "0.05",
    "HEADWATER_SCHEDULER_MAX_RUNS": "10",
}
DEADLINE_SECONDS = 30


class Client:
    def __init__(self, channel: grpc.Channel) -> None:
        self.deployments = deployments_pb2_grpc.DeploymentServiceStub(channel)
        self.flow_runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)

    def every_second(self) -> D.Deployment:
        interval = schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(seconds=1))
        schedule = schedules_pb2.DeploymentSchedule(
            schedule=schedules_pb2.Schedule(interval=interval)
        )
        deployment = D.Deployment(
            flow_name=f"tick-{uuid.uuid4().hex[:8]}", name="every-second", schedules=[schedule]
        )
        return self.deployments.CreateDeployment(
            D.CreateDeploymentRequest(deployment=deployment)
        ).deployment

    def runs(self, deployment_id: str) -> list[flow_runs_pb2.FlowRun]:
        listed = self.flow_runs.ListFlowRuns(
            flow_runs_pb2.ListFlowRunsRequest(
                page_size=1000, filter=flow_runs_pb2.FlowRunFilter(deployment_id=deployment_id)
            )
        )
        return list(listed.flow_runs)


def starts(runs: list[flow_runs_pb2.FlowRun]) -> list[datetime]:
    return sorted(run.expected_start_time.ToDatetime(tzinfo=UTC) for run in runs)


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}")
        time.sleep(0.05)


@pytest.fixture(params=DATABASES)
def server(request: pytest.FixtureRequest, make_server: ServerFactory) -> ServerProcess:
    return make_server(database_url_for(request.param, request), env=SCHEDULER_SETTINGS)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with server.channel() as channel:
        yield Client(channel)


def test_runs_are_created_ahead_and_pausing_removes_them(client: Client) -> None:
    paused = client.every_second()
    witness = client.every_second()
    eventually(lambda: len(client.runs(paused.id)) >= 10, "ten runs created ahead")
    for run in client.runs(paused.id):
        assert run.auto_scheduled
        assert run.state.name == "Scheduled"
        assert run.expected_start_time.ToDatetime(tzinfo=UTC) > datetime(2020, 1, 1, tzinfo=UTC)

    client.deployments.PauseDeployment(D.PauseDeploymentRequest(deployment_id=paused.id))
    paused_at = datetime.now(UTC)
    assert client.runs(paused.id) == []

    # The witness's window moves on every second, and a pass creates the ten runs from its own
    # time on: once the first of the witness's last ten is due over a second after the pause,
    # a pass ran after it, and it created no run of the paused deployment.
    def passed_since_pause() -> bool:
        times = starts(client.runs(witness.id))
        return len(times) >= 10 and times[-10] > paused_at + timedelta(seconds=1)

    eventually(passed_since_pause, "a pass after the pause")
    assert client.runs(paused.id) == []

    client.deployments.ResumeDeployment(D.ResumeDeploymentRequest(deployment_id=paused.id))
    eventually(lambda: len(client.runs(paused.id)) >= 10, "runs created again after resuming")
    found = starts(client.runs(paused.id))
    assert len(found) == len(set(found))


@pytest.mark.postgres
def test_two_servers_on_one_postgres_create_each_run_once(
    make_server: ServerFactory, postgres_url: str
) -> None:
    first = make_server(postgres_url, env=SCHEDULER_SETTINGS)
    second = make_server(postgres_url, env=SCHEDULER_SETTINGS)
    with first.channel() as one, second.channel() as other:
        client, witness = Client(one), Client(other)
        deployment = client.every_second()
        # Both servers pass 20 times a second and keep ten runs ahead; once there are 13, the
        # window has moved on by 3 s and dozens of passes on each tried to create the same runs.
        eventually(lambda: len(witness.runs(deployment.id)) >= 13, "three seconds of runs")
        found = starts(witness.runs(deployment.id))
    assert len(found) == len(set(found)), "a (schedule, time) was created twice"
    seconds = [moment.timestamp() for moment in found]
    assert seconds == [seconds[0] + step for step in range(len(seconds))]  # none missing

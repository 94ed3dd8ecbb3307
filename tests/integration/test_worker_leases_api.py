"""Worker leases over a real server, on SQLite and PostgreSQL.

A run a worker claims (PENDING) is leased to the worker while its heartbeats come; once none
came for the lease period (``HEADWATER_WORKER_LEASE_SECONDS``, two seconds here), the run goes
back to SCHEDULED and the next poll claims it. The workers here are plain gRPC callers that
stop calling; ``tests/headwater/_serve/test_runner_death.py`` kills a real worker process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from headwater.v1 import deployments_pb2, flow_runs_pb2, states_pb2, workers_pb2
from rpc_helpers import Api, error_details
from server_harness import DATABASES, ServerFactory, database_url_for

pytestmark = pytest.mark.integration

D = deployments_pb2
W = workers_pb2

LEASE = {"HEADWATER_WORKER_LEASE_SECONDS": "2"}
# Generous: the machine running the tests may be busy. Nothing here measures speed.
SETTLE_SECONDS = 60.0


@pytest.fixture(params=DATABASES)
def api(request: pytest.FixtureRequest, make_server: ServerFactory) -> Iterator[Api]:
    server = make_server(database_url_for(request.param, request), env=LEASE)
    with server.channel() as channel:
        yield Api(channel)


def _deployment(api: Api) -> D.Deployment:
    deployment = D.Deployment(
        flow_name=f"etl-{uuid.uuid4().hex[:8]}", name="nightly", entrypoint="flows.py:etl"
    )
    request = D.CreateDeploymentRequest(deployment=deployment)
    return api.deployments.CreateDeployment(request).deployment


def _runs(api: Api, deployment_id: str, count: int) -> list[str]:
    request = D.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=deployment_id, runs=[D.DeploymentRun() for _ in range(count)]
    )
    return [run.id for run in api.deployments.BatchCreateFlowRunsFromDeployment(request).flow_runs]


def _poll(api: Api, deployment_id: str, **fields: Any) -> list[str]:
    request = W.PollRunsRequest(deployment_ids=[deployment_id], **fields)
    return [claimed.flow_run.id for claimed in api.workers.PollRuns(request).runs]


def _run(api: Api, run_id: str) -> Any:
    return api.flow_runs.GetFlowRun(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id)).flow_run


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {SETTLE_SECONDS} s")
        time.sleep(0.05)


def test_the_runs_of_a_silent_worker_go_back_to_scheduled_for_another(api: Api) -> None:
    deployment = _deployment(api)
    runs = _runs(api, deployment.id, 2)
    worker = str(uuid.uuid4())
    # An older caller names no worker id: what it claims is not leased (as before).
    (unleased,) = _poll(api, deployment.id, worker_name="old-worker")
    (leased,) = _poll(api, deployment.id, worker_name="silent", worker_id=worker)
    assert sorted([unleased, leased]) == sorted(runs)

    _until(
        lambda: _run(api, leased).state.type == states_pb2.STATE_TYPE_SCHEDULED,
        "the silent worker's run going back to SCHEDULED",
    )

    assert _run(api, unleased).state.type == states_pb2.STATE_TYPE_PENDING
    events = api.flow_runs.ListFlowRunEvents(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=leased, flow_run_states_only=True)
    ).events
    history = [event.state_changed for event in events]
    rescheduled = history[-1]
    assert [state.type for state in history] == [
        states_pb2.STATE_TYPE_SCHEDULED,
        states_pb2.STATE_TYPE_PENDING,
        states_pb2.STATE_TYPE_SCHEDULED,
    ]
    assert "silent" in rescheduled.message
    assert "HEADWATER_WORKER_LEASE_SECONDS" in rescheduled.message
    # Another worker takes it now.
    other = str(uuid.uuid4())
    assert _poll(api, deployment.id, worker_name="other", worker_id=other) == [leased]
    assert _run(api, leased).state.type == states_pb2.STATE_TYPE_PENDING


def test_heartbeats_keep_a_workers_runs_and_their_end_releases_them(api: Api) -> None:
    deployment = _deployment(api)
    (run_id,) = _runs(api, deployment.id, 1)
    worker = str(uuid.uuid4())
    assert _poll(api, deployment.id, worker_name="busy", worker_id=worker) == [run_id]

    # Heartbeats for three lease periods (and the server's start-up allowance): still its.
    started = time.monotonic()
    while time.monotonic() - started < 6.0:
        api.workers.Heartbeat(
            W.HeartbeatRequest(worker_name="busy", worker_id=worker, flow_run_ids=[run_id])
        )
        assert _run(api, run_id).state.type == states_pb2.STATE_TYPE_PENDING
        time.sleep(0.2)

    _until(
        lambda: _run(api, run_id).state.type == states_pb2.STATE_TYPE_SCHEDULED,
        "the run going back to SCHEDULED once the heartbeats stopped",
    )


@pytest.mark.parametrize("rpc", ["PollRuns", "Heartbeat"])
def test_a_malformed_worker_id_is_invalid_argument(api: Api, rpc: str) -> None:
    request: Any = (
        W.PollRunsRequest(worker_name="w", worker_id="nope", deployment_ids=[str(uuid.uuid4())])
        if rpc == "PollRuns"
        else W.HeartbeatRequest(worker_name="w", worker_id="nope")
    )
    with pytest.raises(grpc.RpcError) as caught:
        getattr(api.workers, rpc)(request)
    error = error_details(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == ["worker_id"]
    assert "not a valid UUID" in error.message

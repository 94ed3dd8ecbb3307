"""Worker leases over a real server, on SQLite and PostgreSQL.

A run a worker claims (PENDING) is leased to the worker while its heartbeats come; once none
came for the lease period (``HEADWATER_WORKER_LEASE_SECONDS``, two seconds here), the run goes
back to SCHEDULED and the next poll claims it. The workers here are plain gRPC callers that
stop calling; ``tests/headwater/_serve/test_runner_death.py`` kills a real worker process.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from headwater.v1 import deployments_pb2, flow_runs_pb2, states_pb2, workers_pb2
from rpc_helpers import Api, error_details
from server_harness import DATABASES, ServerFactory, ServerProcess, database_url_for
from sqlalchemy import make_url

pytestmark = pytest.mark.integration

D = deployments_pb2
W = workers_pb2

LEASE = {"HEADWATER_WORKER_LEASE_SECONDS": "2"}
# Generous: the machine running the tests may be busy. Nothing here measures speed.
SETTLE_SECONDS = 60.0


@pytest.fixture(params=DATABASES)
def server(request: pytest.FixtureRequest, make_server: ServerFactory) -> ServerProcess:
    return make_server(database_url_for(request.param, request), env=LEASE)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
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


@contextlib.contextmanager
def _claims_held_up(database_url: str) -> Iterator[None]:
    """Make the server's claims wait, as on a server whose database is busy: hold SQLite's
    write lock, or lock the PostgreSQL workers table a leased claim writes, from outside."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        lock = sqlite3.connect(str(url.database), isolation_level=None, timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            lock.rollback()
            lock.close()
        return
    import psycopg

    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as held:  # one transaction, rolled back on exit
        held.execute("LOCK TABLE workers IN EXCLUSIVE MODE")
        yield
        held.rollback()


# The poll gives up after POLL_DEADLINE; the claim waits HOLD (less than SQLite's busy timeout
# of 5 s, after which the claim would fail instead) and is then made for nobody.
POLL_DEADLINE = 2.0
HOLD = 4.0


@pytest.mark.parametrize("gone", ["deadline", "hung_up"])
def test_a_claim_made_after_its_poller_stopped_waiting_goes_back_to_scheduled(
    server: ServerProcess, api: Api, gone: str
) -> None:
    deployment = _deployment(api)
    (run_id,) = _runs(api, deployment.id, 1)
    worker = str(uuid.uuid4())
    request = W.PollRunsRequest(
        deployment_ids=[deployment.id], worker_name="impatient", worker_id=worker
    )

    held = time.monotonic()
    with _claims_held_up(server.database_url):
        poll = api.workers.PollRuns.future(request, timeout=POLL_DEADLINE)
        if gone == "hung_up":
            time.sleep(POLL_DEADLINE / 2)
            poll.cancel()
        with pytest.raises(grpc.FutureCancelledError if gone == "hung_up" else grpc.RpcError):
            poll.result()
        if gone == "deadline":
            assert poll.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(max(HOLD - (time.monotonic() - held), 0.0))

    def history() -> list[Any]:
        # The worker lives on and keeps its lease: only the undoing can free the run.
        api.workers.Heartbeat(W.HeartbeatRequest(worker_name="impatient", worker_id=worker))
        request = flow_runs_pb2.ListFlowRunEventsRequest(
            flow_run_id=run_id, flow_run_states_only=True
        )
        return [event.state_changed for event in api.flow_runs.ListFlowRunEvents(request).events]

    # Claimed once the lock went, for a caller no longer there: put back at once, long before
    # the lease (its worker could heartbeat on for ever while never hearing of the run).
    _until(lambda: len(history()) == 3, "the unanswered claim to be undone")
    states = history()
    assert [state.type for state in states] == [
        states_pb2.STATE_TYPE_SCHEDULED,
        states_pb2.STATE_TYPE_PENDING,
        states_pb2.STATE_TYPE_SCHEDULED,
    ]
    assert "impatient" in states[-1].message
    assert "stopped waiting" in states[-1].message
    # The worker polls again, waiting this time, and gets the run.
    assert _poll(api, deployment.id, worker_name="impatient", worker_id=worker) == [run_id]
    assert _run(api, run_id).state.type == states_pb2.STATE_TYPE_PENDING


def _heartbeat(api: Api, worker: str, held: list[str], claims_seen: int) -> None:
    request = W.HeartbeatRequest(
        worker_name="forgetful", worker_id=worker, flow_run_ids=held, claims_seen=claims_seen
    )
    api.workers.Heartbeat(request)


def test_a_run_whose_claim_never_reached_its_worker_goes_back_when_its_heartbeat_says_so(
    api: Api,
) -> None:
    deployment = _deployment(api)
    runs = _runs(api, deployment.id, 2)
    worker = str(uuid.uuid4())

    def poll() -> W.PollRunsResponse:
        request = W.PollRunsRequest(
            deployment_ids=[deployment.id], worker_name="forgetful", worker_id=worker
        )
        return api.workers.PollRuns(request)

    answer = poll()
    assert answer.claims == 1
    (first,) = [run.flow_run.id for run in answer.runs]
    (lost,) = set(runs) - {first}
    # The second claim's answer is lost on its way (the worker never hears of `lost`)...
    assert ([run.flow_run.id for run in poll().runs]) == [lost]
    # ...but a heartbeat sent before that answer could have arrived (it echoes one claim) is
    # no proof of the loss, and an older client that echoes nothing neither: nothing moves.
    _heartbeat(api, worker, [first], claims_seen=1)
    _heartbeat(api, worker, [first], claims_seen=0)
    assert _run(api, lost).state.type == states_pb2.STATE_TYPE_PENDING
    # Its next poll's answer, empty, tells it the count; its heartbeat echoes it.
    empty = poll()
    assert (list(empty.runs), empty.claims) == ([], 2)
    _heartbeat(api, worker, [first], claims_seen=2)

    rescheduled = _run(api, lost).state
    assert rescheduled.type == states_pb2.STATE_TYPE_SCHEDULED
    assert "forgetful" in rescheduled.message
    assert "never reached it" in rescheduled.message
    assert _run(api, first).state.type == states_pb2.STATE_TYPE_PENDING  # held: kept
    # Another worker takes it.
    other = str(uuid.uuid4())
    assert _poll(api, deployment.id, worker_name="other", worker_id=other) == [lost]


def test_a_heartbeat_echoing_every_claim_keeps_each_run_it_holds(api: Api) -> None:
    deployment = _deployment(api)
    runs = _runs(api, deployment.id, 3)
    worker = str(uuid.uuid4())
    request = W.PollRunsRequest(
        deployment_ids=[deployment.id], worker_name="steady", worker_id=worker, max_runs=3
    )
    answer = api.workers.PollRuns(request)
    assert sorted(run.flow_run.id for run in answer.runs) == sorted(runs)
    for _ in range(3):
        _heartbeat(api, worker, runs, claims_seen=answer.claims)
    assert {_run(api, run_id).state.type for run_id in runs} == {states_pb2.STATE_TYPE_PENDING}

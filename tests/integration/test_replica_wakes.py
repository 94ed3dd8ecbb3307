"""Two server processes on one PostgreSQL wake each other's waiters through LISTEN/NOTIFY.

Both servers run with a wake re-check of 300 s (``HEADWATER_WAKE_RECHECK_SECONDS``), far longer
than any wait here, and mark no run Late, so neither storage re-reads nor a local change can
explain a waiter waking: only a notification from the other server can. Each waiter holds for
:data:`HELD_SECONDS`; it must answer within half of that, so an answer at the end of its hold
(which re-reads storage once more) cannot pass.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import pytest
from headwater.v1 import deployments_pb2, flow_runs_pb2, states_pb2, workers_pb2
from headwater_server.storage.notify import LISTENER_NAME
from rpc_helpers import Api
from server_harness import (
    POSTGRES_ADMIN_URL,
    ServerFactory,
    ServerProcess,
    throwaway_postgres_database,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

S = states_pb2
T = TypeVar("T")
HELD_SECONDS = 60.0
# No storage re-check, and no run marked Late (a local state change, which wakes pollers too).
SETTINGS = {"HEADWATER_WAKE_RECHECK_SECONDS": "300", "HEADWATER_LATE_RUN_AFTER_SECONDS": "300"}
DEADLINE_SECONDS = 30.0


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own: no other test's server listens on it."""
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture
def replicas(
    make_server: ServerFactory, database_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    yield make_server(database_url, env=SETTINGS), make_server(database_url, env=SETTINGS)


@pytest.fixture
def apis(replicas: tuple[ServerProcess, ServerProcess]) -> Iterator[tuple[Api, Api]]:
    a, b = replicas
    with a.channel() as channel_a, b.channel() as channel_b:
        yield Api(channel_a), Api(channel_b)


def _deployment(api: Api, **fields: Any) -> deployments_pb2.Deployment:
    deployment = deployments_pb2.Deployment(
        flow_name=f"replicas-{uuid.uuid4().hex[:8]}",
        name="wakes",
        entrypoint="flows.py:wakes",
        **fields,
    )
    request = deployments_pb2.CreateDeploymentRequest(deployment=deployment)
    return api.deployments.CreateDeployment(request).deployment


def _runs(api: Api, deployment_id: str, count: int) -> list[str]:
    request = deployments_pb2.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=deployment_id, runs=[deployments_pb2.DeploymentRun() for _ in range(count)]
    )
    return [run.id for run in api.deployments.BatchCreateFlowRunsFromDeployment(request).flow_runs]


def _eventually(condition: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_SECONDS} s: {what}")
        time.sleep(0.05)
    return found


def _answered_early(future: Future[T], since: float) -> T:
    """The call's answer, checked to have come well before its hold would have ended."""
    answer = future.result(timeout=HELD_SECONDS + 30)
    waited = time.monotonic() - since
    assert waited < HELD_SECONDS / 2, f"answered after {waited:.1f} s: at the end of its hold"
    return answer


def _poll(api: Api, deployment_id: str, wait: float = HELD_SECONDS) -> list[workers_pb2.ClaimedRun]:
    request = workers_pb2.PollRunsRequest(
        worker_name="replica-worker", deployment_ids=[deployment_id]
    )
    request.wait.FromNanoseconds(int(wait * 1e9))
    return list(api.workers.PollRuns(request, timeout=HELD_SECONDS + 30).runs)


def _poll_on_a_run_created_through_b(a: Api, b: Api) -> None:
    deployment = _deployment(b)
    # A poll that does not wait first, so the held one below finds A's channel connected.
    assert _poll(a, deployment.id, wait=0) == []
    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(_poll, a, deployment.id)
        time.sleep(1.0)  # let the poll reach server A, find nothing and wait
        assert not polled.done()
        [run_id] = _runs(b, deployment.id, 1)
        [claimed] = _answered_early(polled, time.monotonic())
    assert claimed.flow_run.id == run_id
    assert claimed.flow_run.state.type == S.STATE_TYPE_PENDING


def test_a_run_created_through_one_server_wakes_a_poll_held_by_the_other(
    apis: tuple[Api, Api],
) -> None:
    _poll_on_a_run_created_through_b(*apis)


def test_a_slot_freed_through_one_server_wakes_the_run_waiting_on_the_other(
    apis: tuple[Api, Api],
) -> None:
    a, b = apis
    deployment = _deployment(b, concurrency_limit=1)
    holder, waiter = _runs(b, deployment.id, 2)
    assert b.propose(holder, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT

    def propose_on_a() -> flow_runs_pb2.SetFlowRunStateResponse:
        return a.flow_runs.SetFlowRunState(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=waiter,
                state=S.State(type=S.STATE_TYPE_RUNNING),
                transition_id=str(uuid.uuid4()),
            ),
            timeout=HELD_SECONDS,
        )

    def waiting() -> bool:
        request = flow_runs_pb2.GetFlowRunRequest(flow_run_id=waiter)
        return bool(
            b.flow_runs.GetFlowRun(request).flow_run.state.name == "AwaitingConcurrencySlot"
        )

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(propose_on_a)
        _eventually(waiting, "the second run waits for the deployment's slot")
        time.sleep(0.2)  # its answer is now held by server A
        assert not held.done()
        assert b.propose(holder, S.STATE_TYPE_COMPLETED).result.decision == S.DECISION_ACCEPT
        answer = _answered_early(held, time.monotonic())
    assert answer.result.decision == S.DECISION_WAIT  # held, then told to propose again
    assert a.propose(waiter, S.STATE_TYPE_RUNNING).result.decision == S.DECISION_ACCEPT


def test_a_state_set_through_one_server_wakes_a_long_poll_for_events_on_the_other(
    apis: tuple[Api, Api],
) -> None:
    a, b = apis
    [run_id] = _runs(b, _deployment(b).id, 1)
    first = a.flow_runs.ListFlowRunEvents(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run_id)
    )
    request = flow_runs_pb2.ListFlowRunEventsRequest(
        flow_run_id=run_id, after_sequence=first.last_sequence
    )
    request.wait.FromNanoseconds(int(HELD_SECONDS * 1e9))
    with ThreadPoolExecutor(1) as pool:
        listed = pool.submit(a.flow_runs.ListFlowRunEvents, request, timeout=HELD_SECONDS + 30)
        time.sleep(1.0)
        assert not listed.done()
        b.propose(run_id, S.STATE_TYPE_RUNNING)
        events = _answered_early(listed, time.monotonic()).events
    assert [event.state_changed.type for event in events] == [S.STATE_TYPE_RUNNING]


def _listeners(database: str) -> set[int]:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, LISTENER_NAME),
        ).fetchall()
    return {pid for (pid,) in rows}


def test_a_dropped_listening_connection_reconnects_and_wakes_again(
    replicas: tuple[ServerProcess, ServerProcess], apis: tuple[Api, Api], database_url: str
) -> None:
    database = database_url.rsplit("/", 1)[1]
    before = _eventually(lambda: _listeners(database), "both servers listen")
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for pid in before:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def listening_again() -> bool:
        now = _listeners(database)
        return len(now) == 2 and not now & before

    _eventually(listening_again, "both servers listen again on new connections")
    _poll_on_a_run_created_through_b(*apis)
    a, _b = replicas
    assert "Listening for other servers' changes again" in a.output()

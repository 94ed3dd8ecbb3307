"""How ``Database.run`` reaches its threads: answers, errors, order, cancellation, draining.

The hops are exercised directly (with plain functions) and through ``Database`` on real SQLite
and PostgreSQL databases, where closing while writes are queued must apply every one of them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from headwater.v1 import flow_runs_pb2, states_pb2
from headwater_server.errors import ServiceError
from headwater_server.storage.database import Database
from headwater_server.storage.hops import HopClosedError, PoolHop, WorkerHop

RUNNING = states_pb2.STATE_TYPE_RUNNING


@pytest.fixture(params=["worker", "pool"])
def hop(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    made = (
        WorkerHop("test-hop")
        if request.param == "worker"
        else PoolHop(ThreadPoolExecutor(1, thread_name_prefix="test-hop"))
    )
    yield made
    made.close()


async def test_answers_and_errors_reach_the_awaiting_caller(hop) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    assert await hop.submit(loop, lambda: 41 + 1) == 42
    assert await hop.submit(loop, lambda: threading.current_thread().name) != (
        threading.current_thread().name
    )
    with pytest.raises(ZeroDivisionError):
        await hop.submit(loop, lambda: 1 / 0)
    assert await hop.submit(loop, lambda: "still working") == "still working"


async def test_calls_run_in_submission_order_on_one_thread() -> None:
    hop = WorkerHop("test-hop")
    seen: list[tuple[int, str]] = []
    try:
        loop = asyncio.get_running_loop()
        futures = [
            hop.submit(loop, lambda i=i: seen.append((i, threading.current_thread().name)))
            for i in range(200)
        ]
        await asyncio.gather(*futures)
    finally:
        hop.close()
    assert [i for i, _ in seen] == list(range(200))
    assert {name for _, name in seen} == {"test-hop"}


async def test_a_call_cancelled_before_it_started_is_skipped() -> None:
    hop = WorkerHop("test-hop")
    gate = threading.Event()
    ran: list[str] = []
    try:
        loop = asyncio.get_running_loop()
        blocker = hop.submit(loop, gate.wait)
        skipped = hop.submit(loop, lambda: ran.append("skipped"))
        skipped.cancel()
        after = hop.submit(loop, lambda: ran.append("after"))
        gate.set()
        await blocker
        await after
    finally:
        hop.close()
    assert ran == ["after"]


def test_close_runs_everything_queued_then_refuses_more() -> None:
    hop = WorkerHop("test-hop")
    done: list[int] = []
    loop = asyncio.new_event_loop()
    try:
        hop.submit(loop, lambda: time.sleep(0.05))
        for i in range(50):
            hop.submit(loop, lambda i=i: done.append(i))
        hop.close()  # from a thread that is not the loop's: blocks until drained
        assert done == list(range(50))
        with pytest.raises(HopClosedError):
            hop.submit(loop, lambda: None)
        hop.close()  # idempotent
    finally:
        loop.close()


def test_an_answer_for_a_closed_loop_is_dropped_quietly() -> None:
    hop = WorkerHop("test-hop")
    gate = threading.Event()
    loop = asyncio.new_event_loop()
    hop.submit(loop, gate.wait)
    loop.close()
    gate.set()
    hop.close()  # the worker survived delivering to a closed loop
    assert not hop._thread.is_alive()


def test_closing_the_database_applies_every_queued_write(database_url: str) -> None:
    db = Database.open(database_url)
    repo = db.repository
    runs = [
        repo.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="drain")).flow_run
        for _ in range(30)
    ]
    answers: list[object] = []

    async def submit_then_close() -> None:
        tasks = [
            asyncio.ensure_future(
                db.run(
                    repo.set_flow_run_state,
                    flow_runs_pb2.SetFlowRunStateRequest(
                        flow_run_id=run.id, state=states_pb2.State(type=RUNNING)
                    ),
                )
            )
            for run in runs
        ]
        await asyncio.sleep(0)  # every call is queued now
        closing = asyncio.ensure_future(asyncio.to_thread(db.close))
        answers.extend(await asyncio.gather(*tasks, return_exceptions=True))
        await closing
        with pytest.raises(ServiceError) as refused:
            await db.run(repo.get_flow_run, flow_runs_pb2.GetFlowRunRequest(flow_run_id=runs[0].id))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE

    asyncio.run(submit_then_close())
    assert all(
        isinstance(a, flow_runs_pb2.SetFlowRunStateResponse)
        and a.result.decision == states_pb2.DECISION_ACCEPT
        for a in answers
    ), answers
    reopened = Database.open(database_url)
    try:
        for run in runs:
            stored = reopened.repository.get_flow_run(
                flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)
            ).flow_run
            assert stored.state.type == RUNNING
    finally:
        reopened.close()


def test_sqlite_uses_the_worker_and_postgres_a_pool(database: Database) -> None:
    expected = WorkerHop if database.dialect == "sqlite" else PoolHop
    assert isinstance(database._hop, expected)

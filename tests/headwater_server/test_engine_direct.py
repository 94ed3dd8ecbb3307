"""The embedded engine's direct lane (`RunningServer.direct_lane`) against the stream.

It must store what the stream's lean way stores and answer what it answers, only after the
commit, on SQLite; and take nothing it cannot (anything but a task run's start or end, a
PostgreSQL database, a stopping server), so that the caller sends those over the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from headwater.v1 import engine_pb2, flow_runs_pb2, states_pb2, task_runs_pb2
from headwater_server.application.backend import Backend
from headwater_server.errors import ServiceError
from headwater_server.events import EventHub
from headwater_server.server import RunningServer, start_server
from headwater_server.servicers.engine_direct import DirectLane
from headwater_server.storage.database import Database

FR = flow_runs_pb2
TR = task_runs_pb2
_Request = engine_pb2.ConnectRequest
_RUNNING = states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING)
_COMPLETED = states_pb2.State(
    type=states_pb2.STATE_TYPE_COMPLETED, result=states_pb2.StateResult(json="7")
)
_METADATA = (("headwater-engine-id", str(uuid.UUID(int=7))),)


def _start(flow_run_id: str, task_run_id: str, key: str, **fields: Any) -> _Request:
    return _Request(
        create_task_run=TR.CreateTaskRunRequest(
            flow_run_id=flow_run_id,
            task_key="t",
            dynamic_key=key,
            start=True,
            task_run_id=task_run_id,
            request_id=str(uuid.uuid4()),
            **fields,
        )
    )


def _end(task_run_id: str, state: states_pb2.State = _COMPLETED) -> _Request:
    return _Request(
        set_task_run_state=TR.SetTaskRunStateRequest(
            task_run_id=task_run_id, state=state, transition_id=str(uuid.uuid4())
        )
    )


class _Outcomes:
    """What the lane delivers, and on which thread (it is called on the database thread)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcomes: list[Any] = []
        self.thread = ""
        self.seen_in_database: list[Any] = []
        self.on_deliver: Callable[[], list[Any]] | None = None

    def __call__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.thread = threading.current_thread().name
        if self.on_deliver is not None:
            self.seen_in_database = self.on_deliver()
        self.done.set()

    async def wait(self) -> list[Any]:
        assert await asyncio.to_thread(self.done.wait, 10), "the lane never delivered"
        return self.outcomes


async def _running_flow_run(server: RunningServer) -> str:
    """A flow run made RUNNING over the in-process stream, as the engine does it."""
    call = server.connect_engine(_METADATA)
    await call.write(_Request(sequence=1, create_flow_run=FR.CreateFlowRunRequest(flow_name="d")))
    flow_run_id = (await call.read()).create_flow_run.flow_run.id
    await call.write(
        _Request(
            sequence=2,
            set_flow_run_state=FR.SetFlowRunStateRequest(
                flow_run_id=flow_run_id, state=_RUNNING, transition_id=str(uuid.uuid4())
            ),
        )
    )
    await call.read()
    call.cancel()
    return flow_run_id


def _stored_states(database: Path, task_run_ids: list[str]) -> list[tuple[str, str]]:
    """Each task run's stored state, read on a connection of our own (what is committed)."""
    with sqlite3.connect(database) as connection:
        marks = ",".join("?" * len(task_run_ids))
        rows = connection.execute(
            f"SELECT id, state_name FROM task_runs WHERE id IN ({marks})", task_run_ids
        ).fetchall()
    return sorted(rows)


async def _with_server(
    tmp_path: Path, body: Callable[[RunningServer, Path], Awaitable[None]]
) -> None:
    database = tmp_path / "direct.db"
    server = await start_server(
        f"unix-abstract:headwater-test-{uuid.uuid4().hex}", f"sqlite:///{database}"
    )
    try:
        await body(server, database)
    finally:
        await server.stop(1)


async def test_the_lane_stores_a_start_and_an_end_and_answers_after_the_commit(
    tmp_path: Path,
) -> None:
    async def body(server: RunningServer, database: Path) -> None:
        flow_run_id = await _running_flow_run(server)
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        lane = server.direct_lane(owned=True)
        started = _Outcomes()
        assert lane.submit([_start(flow_run_id, first, "1")], started)
        [answer] = await started.wait()
        assert answer.created and answer.task_run.id == first
        assert answer.result.decision == states_pb2.DECISION_ACCEPT
        assert answer.task_run.state.type == states_pb2.STATE_TYPE_RUNNING
        assert started.thread.startswith("headwater-db")  # answered on the database thread

        # The first task's end rides with the second's start: one hand-over, both stored
        # before the answer (read on another connection while delivering).
        both = _Outcomes()
        both.on_deliver = lambda: _stored_states(database, [first, second])
        assert lane.submit([_end(first), _start(flow_run_id, second, "2")], both)
        ended, created = await both.wait()
        assert ended.result.decision == states_pb2.DECISION_ACCEPT
        assert ended.task_run.state.type == states_pb2.STATE_TYPE_COMPLETED
        assert created.task_run.state.type == states_pb2.STATE_TYPE_RUNNING
        assert both.seen_in_database == sorted([(first, "Completed"), (second, "Running")])

    await _with_server(tmp_path, body)


def _logged(database: Path, keys: list[str]) -> list[str]:
    """Which of ``keys`` (request or transition ids) the request log holds."""
    with sqlite3.connect(database) as connection:
        marks = ",".join("?" * len(keys))
        rows = connection.execute(
            f"SELECT key FROM request_log WHERE key IN ({marks})", keys
        ).fetchall()
    return sorted(key for (key,) in rows)


async def test_the_lane_logs_no_request_to_answer_a_resend_and_the_stream_does(
    tmp_path: Path,
) -> None:
    async def body(server: RunningServer, database: Path) -> None:
        flow_run_id = await _running_flow_run(server)
        task_run_id = str(uuid.uuid4())
        start = _start(flow_run_id, task_run_id, "1")
        end = _end(task_run_id)
        lane_keys = [start.create_task_run.request_id, end.set_task_run_state.transition_id]
        for request in (start, end):
            outcomes = _Outcomes()
            assert server.direct_lane(owned=True).submit([request], outcomes)
            [answer] = await outcomes.wait()
            assert answer.task_run.id == task_run_id
        # Answered once, within this process: nothing can arrive again to be answered from a log.
        assert _logged(database, lane_keys) == []

        # The same operations the stream's way are logged: a resend gets the first answer.
        db = server._backend.db
        other = str(uuid.uuid4())
        stream_start = _start(flow_run_id, other, "2").create_task_run
        first = await db.run(db.repository.create_task_run, stream_start)
        stream_end = _end(other).set_task_run_state
        await db.run(db.repository.set_task_run_state, stream_end)
        assert _logged(database, [stream_start.request_id, stream_end.transition_id]) == sorted(
            [stream_start.request_id, stream_end.transition_id]
        )
        assert await db.run(db.repository.create_task_run, stream_start) == first

    await _with_server(tmp_path, body)


async def test_a_failed_operation_is_handed_back_and_the_others_are_stored(
    tmp_path: Path,
) -> None:
    async def body(server: RunningServer, database: Path) -> None:
        flow_run_id = await _running_flow_run(server)
        task_run_id = str(uuid.uuid4())
        outcomes = _Outcomes()
        unknown_run = str(uuid.uuid4())
        assert server.direct_lane(owned=True).submit(
            [
                _end(unknown_run),  # no such task run
                _start(flow_run_id, task_run_id, "1"),
                _start(flow_run_id, str(uuid.uuid4()), "2", parameters_json="{not json"),
            ],
            outcomes,
        )
        missing, created, malformed = await outcomes.wait()
        assert isinstance(missing, ServiceError) and missing.reason == "TASK_RUN_NOT_FOUND"
        assert isinstance(malformed, ServiceError) and "parameters_json" in str(malformed)
        assert created.task_run.id == task_run_id
        assert _stored_states(database, [task_run_id, unknown_run]) == [(task_run_id, "Running")]

    await _with_server(tmp_path, body)


@pytest.mark.parametrize(
    "request_for",
    [
        pytest.param(lambda run, task: _end(task, _RUNNING), id="a RUNNING proposal"),
        pytest.param(
            lambda run, task: _start(run, task, "1", tags=["limited"]), id="a start with tags"
        ),
        pytest.param(
            lambda run, task: _Request(create_flow_run=FR.CreateFlowRunRequest(flow_name="x")),
            id="a flow run's create",
        ),
        pytest.param(
            lambda run, task: _Request(
                set_flow_run_state=FR.SetFlowRunStateRequest(flow_run_id=run, state=_COMPLETED)
            ),
            id="a flow run's state",
        ),
        pytest.param(lambda run, task: _Request(), id="no operation"),
    ],
)
async def test_the_lane_takes_nothing_the_stream_must_run(
    tmp_path: Path, request_for: Callable[[str, str], _Request]
) -> None:
    async def body(server: RunningServer, database: Path) -> None:
        flow_run_id = await _running_flow_run(server)
        task_run_id = str(uuid.uuid4())
        delivered = _Outcomes()
        lane = server.direct_lane(owned=True)
        # Alone, or behind an operation it could take: all or nothing.
        assert not lane.submit([request_for(flow_run_id, task_run_id)], delivered)
        other = str(uuid.uuid4())
        taken = [_start(flow_run_id, other, "0"), request_for(flow_run_id, task_run_id)]
        assert not lane.submit(taken, delivered)
        await asyncio.sleep(0.05)
        assert not delivered.done.is_set()
        assert _stored_states(database, [task_run_id, other]) == []

    await _with_server(tmp_path, body)


async def test_the_lane_takes_nothing_once_the_server_stops(tmp_path: Path) -> None:
    database = tmp_path / "stopping.db"
    server = await start_server(
        f"unix-abstract:headwater-test-{uuid.uuid4().hex}", f"sqlite:///{database}"
    )
    flow_run_id = await _running_flow_run(server)
    lane = server.direct_lane(owned=True)
    await server.stop(1)
    assert not lane.submit([_start(flow_run_id, str(uuid.uuid4()), "1")], _Outcomes())


@pytest.mark.postgres
async def test_the_lane_takes_nothing_on_postgresql(postgres_database_url: str) -> None:
    server = await start_server("127.0.0.1:0", postgres_database_url)
    try:
        flow_run_id = await _running_flow_run(server)
        lane = server.direct_lane(owned=True)
        assert not lane.submit([_start(flow_run_id, str(uuid.uuid4()), "1")], _Outcomes())
    finally:
        await server.stop(1)


# ---------------------------------------------------------------- stored on the caller's thread
#
# On a database with no server around it nothing else reaches the database thread, so it is
# idle whenever the test says so: the lane then lets the caller store its operations itself.


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[tuple[DirectLane, Path]]:
    """A direct lane on a database of its own (no server: its database thread idles)."""
    path = tmp_path / "inline.db"
    db = Database.open(f"sqlite:///{path}")
    try:
        yield DirectLane(Backend(db=db, hub=EventHub(_no_sequence, poll_interval=3600)), True), path
    finally:
        db.close()


async def _no_sequence(flow_run_id: str) -> int:
    return -1


async def _running_flow_run_in(lane: DirectLane) -> str:
    db = lane._backend.db
    created = await db.run(db.repository.create_flow_run, FR.CreateFlowRunRequest(flow_name="i"))
    await db.run(
        db.repository.set_flow_run_state,
        FR.SetFlowRunStateRequest(flow_run_id=created.flow_run.id, state=_RUNNING),
    )
    return str(created.flow_run.id)


def _hand_over(
    lane: DirectLane, requests: list[_Request], inline: bool = True
) -> tuple[list[Any], str, bool]:
    """As the engine's thread does: hand ``requests`` over, store them here if the lane lets
    it, wait for the outcomes. Returns them, the thread that delivered them, and whether this
    thread stored them."""
    delivered = _Outcomes()
    taken = lane.submit(requests, delivered, inline)
    assert taken
    if taken is not True:
        taken()
    assert delivered.done.wait(10), "the lane never delivered"
    return delivered.outcomes, delivered.thread, taken is not True


async def test_an_idle_lane_lets_the_caller_store_and_answers_after_the_commit(
    bare: tuple[DirectLane, Path],
) -> None:
    lane, database = bare
    flow_run_id = await _running_flow_run_in(lane)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    def on_the_callers_thread() -> None:
        started = _Outcomes()
        run_here = lane.submit([_start(flow_run_id, first, "1")], started, True)
        assert callable(run_here)
        assert not started.done.is_set() and _stored_states(database, [first]) == []
        run_here()
        assert started.done.is_set() and started.thread == threading.current_thread().name
        [answer] = started.outcomes
        assert answer.created and answer.task_run.state.type == states_pb2.STATE_TYPE_RUNNING

        both = _Outcomes()
        both.on_deliver = lambda: _stored_states(database, [first, second])
        run_here = lane.submit([_end(first), _start(flow_run_id, second, "2")], both, True)
        assert callable(run_here)
        run_here()
        ended, created = both.outcomes
        assert ended.task_run.state.type == states_pb2.STATE_TYPE_COMPLETED
        assert created.task_run.id == second
        # Committed before the answer: another connection saw both while it was delivered.
        assert both.seen_in_database == sorted([(first, "Completed"), (second, "Running")])

    await asyncio.to_thread(on_the_callers_thread)


async def test_a_failing_operation_stored_by_the_caller_is_answered_with_its_error(
    bare: tuple[DirectLane, Path],
) -> None:
    """The unknown run's end breaks the group, stored without a savepoint per operation: it
    runs again, still on the caller's thread, with them; the others are stored and what
    follows is stored as usual."""
    lane, database = bare
    flow_run_id = await _running_flow_run_in(lane)
    task_run_id, unknown_run = str(uuid.uuid4()), str(uuid.uuid4())

    def on_the_callers_thread() -> None:
        outcomes, thread, here = _hand_over(
            lane,
            [
                _start(flow_run_id, task_run_id, "1"),
                _end(unknown_run),
                _start(flow_run_id, str(uuid.uuid4()), "2", parameters_json="{not json"),
            ],
        )
        assert here and thread == threading.current_thread().name
        created, missing, malformed = outcomes
        assert created.task_run.id == task_run_id
        assert isinstance(missing, ServiceError) and missing.reason == "TASK_RUN_NOT_FOUND"
        assert isinstance(malformed, ServiceError) and "parameters_json" in str(malformed)
        assert _stored_states(database, [task_run_id, unknown_run]) == [(task_run_id, "Running")]

        [ended], _thread, here = _hand_over(lane, [_end(task_run_id)])
        assert here and ended.task_run.state.type == states_pb2.STATE_TYPE_COMPLETED

    await asyncio.to_thread(on_the_callers_thread)
    assert _stored_states(database, [task_run_id]) == [(task_run_id, "Completed")]


async def test_callers_storing_and_queueing_from_several_threads_keep_order_and_lose_nothing(
    bare: tuple[DirectLane, Path],
) -> None:
    """Flows on four threads, each ending a task with the next one's start in one hand-over,
    stored by the caller when the database thread is idle and queued when it is not (or not
    asked), while the loop runs calls of its own: every task run ends stored COMPLETED (an
    end overtaking its start would be NOT_FOUND), and the flow run's event log has every
    number once."""
    lane, database = bare
    db = lane._backend.db
    flow_run_id = await _running_flow_run_in(lane)
    tasks = 40
    here = [0] * 4
    ids: list[list[str]] = [[] for _ in range(4)]

    def flow(number: int) -> None:
        previous = None
        for index in range(tasks + 1):
            requests = [] if previous is None else [_end(previous)]
            if index < tasks:
                previous = str(uuid.uuid4())
                ids[number].append(previous)
                requests.append(_start(flow_run_id, previous, f"{number}-{index}"))
            outcomes, _thread, stored_here = _hand_over(lane, requests, inline=index % 5 != 4)
            assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
            here[number] += stored_here

    await asyncio.to_thread(flow, 0)  # alone first: the database thread idles throughout
    assert here[0] == tasks + 1 - (tasks + 1) // 5

    async def the_loops_own_calls() -> None:
        for _ in range(100):
            await db.run(db.repository.get_flow_run, FR.GetFlowRunRequest(flow_run_id=flow_run_id))

    await asyncio.gather(the_loops_own_calls(), *(asyncio.to_thread(flow, n) for n in (1, 2, 3)))
    every = [task_run_id for per_flow in ids for task_run_id in per_flow]
    assert _stored_states(database, every) == sorted((i, "Completed") for i in every)
    events = await db.run(
        db.repository.list_flow_run_events,
        FR.ListFlowRunEventsRequest(flow_run_id=flow_run_id, page_size=1000),
    )
    # Two flow run states, then three per task run (PENDING, RUNNING, COMPLETED).
    assert [e.sequence for e in events.events] == list(range(1, 2 + 3 * len(every) + 1))


async def test_closing_while_callers_hand_over_loses_nothing_it_accepted(tmp_path: Path) -> None:
    """A hand-over racing the database's close is refused or stored whole: when the close
    returns, every accepted one was answered, and a reopened database holds them all."""
    path = tmp_path / "closing.db"
    db = Database.open(f"sqlite:///{path}")
    lane = DirectLane(Backend(db=db, hub=EventHub(_no_sequence, poll_interval=3600)), True)
    flow_run_id = await _running_flow_run_in(lane)
    accepted = [0] * 4
    answered = [0] * 4
    started: list[list[str]] = [[] for _ in range(4)]
    going = threading.Barrier(5)

    def flow(number: int) -> None:
        going.wait()
        for index in itertools.count():
            task_run_id = str(uuid.uuid4())
            done = threading.Event()

            def deliver(outcomes: list[Any], done: threading.Event = done) -> None:
                assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
                answered[number] += 1
                done.set()

            request = _start(flow_run_id, task_run_id, f"{number}-{index}")
            taken = lane.submit([request], deliver, index % 2 == 0)
            if not taken:
                return  # closed
            accepted[number] += 1
            started[number].append(task_run_id)
            if taken is not True:
                taken()
            if index % 3 == 0:
                assert done.wait(10)

    flows = [threading.Thread(target=flow, args=(n,)) for n in range(4)]
    for thread in flows:
        thread.start()
    going.wait()
    await asyncio.to_thread(time.sleep, 0.05)  # let them hand over for a while
    await asyncio.to_thread(db.close)
    answered_at_close = list(answered)
    for thread in flows:
        thread.join()
    assert sum(accepted) > 0
    assert answered_at_close == accepted  # the close waited for every accepted one
    every = [task_run_id for per_flow in started for task_run_id in per_flow]
    assert _stored_states(path, every) == sorted((i, "Running") for i in every)

"""How ``Database.run`` reaches its threads: answers, errors, order, cancellation, draining.

The hops are exercised directly (with plain functions) and through ``Database`` on real SQLite
and PostgreSQL databases, where closing while writes are queued must apply every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2
from headwater_server.errors import ServiceError
from headwater_server.storage.database import Database
from headwater_server.storage.engine import create_database_engine
from headwater_server.storage.fastpath import GroupBroken
from headwater_server.storage.hops import HopClosedError, PoolHop, WorkerHop
from sqlalchemy import text

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


class RecordingGroup:
    """A stand-in transaction that records which calls ran inside it."""

    def __init__(self, fail_commit: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.current: list[int] | None = None
        self.fail_commit = fail_commit

    @contextlib.contextmanager
    def __call__(self, optimistic: bool = False) -> Iterator[None]:
        self.current = []
        yield
        self.groups.append(self.current)
        self.current = None
        if self.fail_commit:
            raise OSError("disk full")

    def call(self, index: int) -> int:
        if self.current is not None:
            self.current.append(index)
        if index == 3:
            raise ValueError("three")
        return index


def _busy_writer(
    hop: WorkerHop, loop: asyncio.AbstractEventLoop, gate: threading.Event
) -> asyncio.Future[object]:
    """Occupy the writer thread until ``gate`` is set; returns once it is running, alone."""
    running = threading.Event()

    def block() -> object:
        running.set()
        return gate.wait()

    future = hop.submit(loop, block)
    running.wait()
    return future


async def test_calls_queued_together_run_in_one_group_and_keep_their_own_outcomes() -> None:
    group = RecordingGroup()
    hop = WorkerHop("test-hop", group=group)
    gate = threading.Event()
    try:
        loop = asyncio.get_running_loop()
        blocker = _busy_writer(hop, loop, gate)  # the rest queue up meanwhile
        futures = [hop.submit(loop, lambda i=i: group.call(i)) for i in range(6)]
        gate.set()
        await blocker
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        hop.close()
    assert group.groups == [[0, 1, 2, 3, 4, 5]]  # one group, in submission order
    assert outcomes[:3] == [0, 1, 2] and outcomes[4:] == [4, 5]
    assert isinstance(outcomes[3], ValueError)  # only the failing call sees its error


async def test_a_failed_group_commit_fails_every_call_of_the_group() -> None:
    group = RecordingGroup(fail_commit=True)
    hop = WorkerHop("test-hop", group=group)
    gate = threading.Event()
    try:
        loop = asyncio.get_running_loop()
        blocker = _busy_writer(hop, loop, gate)
        futures = [hop.submit(loop, lambda i=i: group.call(i)) for i in (0, 1)]
        gate.set()
        await blocker
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert await hop.submit(loop, lambda: "alone") == "alone"  # no group: nothing to fail
    finally:
        hop.close()
    assert [type(o) for o in outcomes] == [OSError, OSError]


def test_a_group_commits_once_and_rolls_back_only_a_failing_write(database_url: str) -> None:
    """On SQLite every group does; on PostgreSQL the lean writes' thread (`allow_groups`)."""
    db = Database.open(database_url)
    repo = db.repository
    repo.fast_path.allow_groups()
    announced: list[tuple[str, int]] = []
    commits: list[int] = []

    def announce(events: list[tuple[str, int]]) -> None:
        commits.append(len(events))
        announced.extend(events)

    repo.announce = announce
    try:
        run = repo.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="grouped"))
        run_id = run.flow_run.id

        def start(dynamic_key: str, flow_run_id: str = run_id) -> object:
            return repo.create_task_run(
                task_runs_pb2.CreateTaskRunRequest(
                    flow_run_id=flow_run_id, task_key="t", dynamic_key=dynamic_key, start=True
                )
            )

        with repo.group():
            start("0")
            start("1")
            assert announced == []  # nothing is announced before the commit
            # Another connection sees nothing of the group until it commits.
            assert _task_runs_seen_elsewhere(database_url) == 0
            with pytest.raises(ServiceError) as unknown:
                start("x", flow_run_id=str(uuid.uuid4()))  # rolled back alone
            assert _task_runs_seen_elsewhere(database_url) == 0
            # A read through SQLAlchemy commits what the group wrote so far first.
            listed = repo.list_task_runs(
                task_runs_pb2.ListTaskRunsRequest(
                    filter=task_runs_pb2.TaskRunFilter(flow_run_id=run_id)
                )
            )
            assert [t.dynamic_key for t in listed.task_runs] == ["0", "1"]
            assert _task_runs_seen_elsewhere(database_url) == 2
            assert len(announced) == 4
            start("2")
            assert len(announced) == 4
        assert unknown.value.code == grpc.StatusCode.NOT_FOUND
        assert _task_runs_seen_elsewhere(database_url) == 3
        assert [sequence for _, sequence in announced] == [2, 3, 4, 5, 6, 7]
        assert commits == [4, 2]  # announced once per commit: the flush, then the end
    finally:
        db.close()


def test_an_optimistic_group_writes_no_savepoints_and_breaks_on_a_failure(
    database_url: str,
) -> None:
    """Lean groups drop the savepoint per write; a failing write, or anything that would
    commit part of the group, breaks it whole (nothing stored) for the caller to run again."""
    db = Database.open(database_url)
    repo = db.repository
    repo.fast_path.allow_groups()
    try:
        run_id = repo.create_flow_run(
            flow_runs_pb2.CreateFlowRunRequest(flow_name="optimistic")
        ).flow_run.id

        def start(dynamic_key: str, flow_run_id: str = run_id) -> object:
            return repo.create_task_run(
                task_runs_pb2.CreateTaskRunRequest(
                    flow_run_id=flow_run_id, task_key="t", dynamic_key=dynamic_key, start=True
                )
            )

        with repo.group():  # the usual kind, which opens the thread's held connection
            start("0")
        statements = _traced(repo)
        with repo.group():
            start("1")
        with repo.group(optimistic=True):
            start("2")
            start("3")
        assert _task_runs_seen_elsewhere(database_url) == 4
        if statements is not None:  # SQLite: the statements each group ran
            usual, optimistic = "".join(statements).split("COMMIT")[:2]
            assert "SAVEPOINT" in usual
            assert "INSERT INTO task_runs" in optimistic and "SAVEPOINT" not in optimistic

        with pytest.raises(GroupBroken) as broken, repo.group(optimistic=True):
            start("4")
            start("x", flow_run_id=str(uuid.uuid4()))  # no such flow run
        assert isinstance(broken.value.__cause__, ServiceError)
        assert broken.value.__cause__.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(GroupBroken), repo.group(optimistic=True):
            start("5")
            repo.list_task_runs(task_runs_pb2.ListTaskRunsRequest())  # would commit "5"
        assert _task_runs_seen_elsewhere(database_url) == 4  # neither "4" nor "5"
    finally:
        db.close()


def _traced(repo: Any) -> list[str] | None:
    """On SQLite, the statements this thread's held connection runs from now; else None."""
    connection = repo.fast_path._local.seat.held.connection.dbapi_connection
    if not hasattr(connection, "set_trace_callback"):
        return None
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    return statements


def _task_runs_seen_elsewhere(url: str) -> int:
    """How many task runs a separate connection (another reader) sees committed."""
    engine = create_database_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM task_runs")).scalar_one())
    finally:
        engine.dispose()


async def test_callbacks_answer_in_the_order_queued_with_their_own_outcomes() -> None:
    """`submit_callback` (the engine stream's lean operations): no future, one callback per
    call on the loop, in order, grouped or not; a failing callback loses no other answer."""
    group = RecordingGroup()
    hop = WorkerHop("test-hop", group=group)
    gate = threading.Event()
    answers: list[tuple[int, object]] = []
    done = asyncio.Event()

    def answer(index: int, result: object, error: BaseException | None) -> None:
        answers.append((index, result if error is None else type(error)))
        if index == 1:
            raise RuntimeError("a callback's own bug")
        if index == 5:
            done.set()

    try:
        loop = asyncio.get_running_loop()
        blocker = _busy_writer(hop, loop, gate)  # the calls queue up behind it: one group
        for i in range(5):
            hop.submit_callback(loop, lambda i=i: group.call(i), lambda r, e, i=i: answer(i, r, e))
        gate.set()
        await blocker
        hop.submit_callback(loop, lambda: 5, lambda r, e: answer(5, r, e))  # alone
        await done.wait()
    finally:
        hop.close()
    with pytest.raises(HopClosedError):
        hop.submit_callback(loop, lambda: 0, lambda r, e: None)
    assert group.groups == [[0, 1, 2, 3, 4]]
    assert answers == [(0, 0), (1, 1), (2, 2), (3, ValueError), (4, 4), (5, 5)]


def test_the_sqlite_writer_keeps_one_connection_for_its_writes(sqlite_url: str) -> None:
    """No pool checkout per transaction on the writer thread; a failed write keeps it usable;
    closing the database gives it back."""
    db = Database.open(sqlite_url)
    pool = db.engine.pool

    async def writes() -> list[int]:
        repo = db.repository
        run = await db.run(
            repo.create_flow_run, flow_runs_pb2.CreateFlowRunRequest(flow_name="held")
        )
        seen = []
        for key in ("0", "1", "0", "2"):  # the second "0" is an existing run (a conflict)
            await db.run(
                repo.create_task_run,
                task_runs_pb2.CreateTaskRunRequest(
                    flow_run_id=run.flow_run.id, task_key="t", dynamic_key=key, start=True
                ),
            )
            seen.append(pool.checkedout())  # type: ignore[attr-defined]
        with pytest.raises(ServiceError):
            await db.run(
                repo.create_task_run,
                task_runs_pb2.CreateTaskRunRequest(
                    flow_run_id=str(uuid.uuid4()), task_key="t", dynamic_key="x"
                ),
            )
        await db.run(
            repo.create_task_run,
            task_runs_pb2.CreateTaskRunRequest(
                flow_run_id=run.flow_run.id, task_key="t", dynamic_key="3"
            ),
        )
        seen.append(pool.checkedout())  # type: ignore[attr-defined]
        return seen

    try:
        assert asyncio.run(writes()) == [1, 1, 1, 1, 1]
    finally:
        db.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_group_numbers_task_run_events_once_per_flow_run_and_gives_back_a_failed_writes(
    database_url: str,
) -> None:
    """Inside a group the flow run's event numbers come from memory after the first task run
    write; a failed write's numbers are reused, a flow run proposal numbers after them, and
    the flow run's row ends with the last number. On PostgreSQL as on SQLite: there the
    thread that runs the engine stream's lean writes groups them (`allow_groups`)."""
    db = Database.open(database_url)
    repo = db.repository
    repo.fast_path.allow_groups()
    announced: list[tuple[str, int]] = []
    repo.announce = announced.extend
    try:
        run_id = repo.create_flow_run(
            flow_runs_pb2.CreateFlowRunRequest(flow_name="numbered")
        ).flow_run.id
        repo.set_flow_run_state(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run_id, state=states_pb2.State(type=RUNNING)
            )
        )

        def start(key: str, task_run_id: str = "") -> task_runs_pb2.TaskRun:
            return repo.create_task_run(
                task_runs_pb2.CreateTaskRunRequest(
                    flow_run_id=run_id,
                    task_key="t",
                    dynamic_key=key,
                    start=True,
                    task_run_id=task_run_id,
                )
            ).task_run

        def complete(task_run_id: str) -> None:
            repo.set_task_run_state(
                task_runs_pb2.SetTaskRunStateRequest(
                    task_run_id=task_run_id,
                    state=states_pb2.State(type=states_pb2.STATE_TYPE_COMPLETED),
                )
            )

        with repo.group():
            first = start("0")  # events 3 and 4 (PENDING, RUNNING)
            complete(first.id)  # 5
            with pytest.raises(ServiceError) as taken:  # its numbers are given back
                start("1", task_run_id=first.id)
            second = start("1")  # 6, 7
            complete(second.id)  # 8
        with repo.group():
            third = start("2")  # 9, 10
            repo.set_flow_run_state(  # 11: after the task run states before it
                flow_runs_pb2.SetFlowRunStateRequest(
                    flow_run_id=run_id, state=states_pb2.State(type=states_pb2.STATE_TYPE_FAILED)
                )
            )
            complete(third.id)  # 12
        assert taken.value.code == grpc.StatusCode.ALREADY_EXISTS
        events = repo.list_flow_run_events(
            flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run_id)
        )
    finally:
        db.close()
    assert [event.sequence for event in events.events] == list(range(1, 13))
    assert events.last_sequence == 12
    assert events.events[10].WhichOneof("kind") == "state_changed"
    assert [sequence for _, sequence in announced] == [3, 4, 5, 6, 7, 8, 9, 10, 12]


def test_an_idle_hop_lets_the_caller_run_a_call_itself_and_queues_later_ones_behind_it() -> None:
    """`submit_here` with ``inline``: taken to run on the caller's thread only when nothing
    is queued or running; whatever is submitted after it, inline or not, waits for it."""
    group = RecordingGroup()
    hop = WorkerHop("test-hop", group=group)
    answered: list[tuple[object, str]] = []

    def answer(result: object, error: BaseException | None) -> None:
        answered.append((result if error is None else type(error), threading.current_thread().name))

    try:
        run_here = hop.submit_here(lambda: group.call(0), answer, inline=True)
        assert run_here is not None
        assert answered == []  # taken, not run: nothing runs until the caller runs it
        assert hop.submit_here(lambda: group.call(1), answer) is None
        assert hop.submit_here(lambda: group.call(2), answer, inline=True) is None  # not idle
        run_here()
        assert answered[0] == (0, threading.current_thread().name)  # answered by then
    finally:
        hop.close()
    assert answered == [(0, threading.current_thread().name), (1, "test-hop"), (2, "test-hop")]
    # Its own group; the two queued behind it waited together for it, so they share one.
    assert group.groups == [[0], [1, 2]]
    with pytest.raises(HopClosedError):
        hop.submit_here(lambda: None, answer, inline=True)


async def test_a_busy_hop_queues_an_inline_call() -> None:
    group = RecordingGroup()
    hop = WorkerHop("test-hop", group=group)
    gate = threading.Event()
    answered = threading.Event()
    names: list[str] = []

    def answer(result: object, error: BaseException | None) -> None:
        names.append(threading.current_thread().name)
        answered.set()

    try:
        blocker = _busy_writer(hop, asyncio.get_running_loop(), gate)
        assert hop.submit_here(lambda: group.call(0), answer, inline=True) is None
        gate.set()
        await blocker
        assert await asyncio.to_thread(answered.wait, 10)
    finally:
        hop.close()
    assert names == ["test-hop"]


def test_inline_and_queued_calls_from_several_threads_never_overlap_and_keep_their_order() -> None:
    """Callers on several threads, each sometimes running its call itself and sometimes
    queueing it (and not always waiting for the answer): one call at a time, each caller's
    calls in the order submitted, every call answered once."""
    group = RecordingGroup()
    hop = WorkerHop("test-hop", group=group)
    running: list[int] = []  # the calls running now: never more than one
    overlaps: list[list[int]] = []
    ran: list[tuple[int, int]] = []
    answers: list[int] = []
    here = [0] * 4

    def call(caller: int, index: int) -> int:
        running.append(caller)
        if len(running) > 1:
            overlaps.append(list(running))
        time.sleep(0)  # let another thread in, if anything let it run a call now
        ran.append((caller, index))
        running.remove(caller)
        return index

    def caller(number: int) -> None:
        for index in range(150):
            answered = threading.Lock()
            answered.acquire()

            def answer(
                result: object, error: BaseException | None, done: threading.Lock = answered
            ) -> None:
                assert error is None, error
                answers.append(number)
                done.release()

            run_here = hop.submit_here(
                functools.partial(call, number, index), answer, inline=index % 3 != 2
            )
            if run_here is not None:
                here[number] += 1
                run_here()
            if index % 4:  # else on without waiting: the next one queues behind it
                assert answered.acquire(timeout=10)

    try:
        caller(0)  # alone first: the hop is idle, so its calls run here
        assert here[0] > 0
        threads = [threading.Thread(target=caller, args=(n,)) for n in (1, 2, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        hop.close()
    assert overlaps == []
    assert len(ran) == len(answers) == 4 * 150
    for number in range(4):
        assert [index for who, index in ran if who == number] == list(range(150))


def test_closing_the_database_waits_for_a_call_running_on_its_callers_thread(
    sqlite_url: str,
) -> None:
    """A call taken to run on its caller's thread before the close is stored whole before the
    close returns (it keeps the connection the close then gives back); later ones are refused."""
    db = Database.open(sqlite_url)
    repo = db.repository
    run_id = repo.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="c")).flow_run.id
    inside, gate = threading.Event(), threading.Event()
    order: list[object] = []

    def store() -> object:
        inside.set()
        gate.wait()
        return repo.create_task_run(
            task_runs_pb2.CreateTaskRunRequest(
                flow_run_id=run_id, task_key="t", dynamic_key="0", start=True
            )
        )

    run_here = db.submit_here(store, lambda result, error: order.append(("answered", error)), True)
    assert callable(run_here)
    caller = threading.Thread(target=run_here)
    caller.start()
    assert inside.wait(10)
    # The call goes on once the close is under way (if the close waited for nothing, it
    # would have returned by then).
    opener = threading.Timer(0.2, gate.set)
    opener.start()
    db.close()
    order.append("closed")
    caller.join()
    opener.join()
    assert order == [("answered", None), "closed"]
    assert db.submit_here(lambda: None, lambda result, error: None, True) is False
    reopened = Database.open(sqlite_url)
    try:
        listed = reopened.repository.list_task_runs(
            task_runs_pb2.ListTaskRunsRequest(
                filter=task_runs_pb2.TaskRunFilter(flow_run_id=run_id)
            )
        )
    finally:
        reopened.close()
    assert [t.dynamic_key for t in listed.task_runs] == ["0"]

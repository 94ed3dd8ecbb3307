"""The engine connection (one Connect stream over `headwater._transport.stream`), against real
servers: round trips, errors that leave the stream open, and reconnects.

Most tests run the real server in this process (`stream_support.InProcessServer`); the restart
tests also use a real server subprocess.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from headwater import StateType
from headwater._transport.runtime import background_loop, connect
from headwater._transport.stream.connection import EngineConnection
from headwater._transport.stream.reconnect import MAX_BATCH
from headwater.client import HeadwaterClient
from headwater.exceptions import (
    InvalidRequest,
    ObjectAlreadyExists,
    ObjectNotFound,
    ServiceError,
    ServiceUnavailable,
)
from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2
from stream_support import (
    ACCEPT,
    COMPLETED,
    PENDING,
    RUNNING,
    InProcessServer,
    log_request,
    new_run,
    propose,
    stream_get,
)

# ---------------------------------------------------------------------------- round trips


def test_a_run_goes_through_its_states_on_the_stream(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    run_id = new_run(connection, parameters_json='{"x": 1}')
    running = propose(connection, run_id, RUNNING)
    assert running.result.decision == ACCEPT
    assert running.flow_run.run_count == 1
    completed = propose(connection, run_id, COMPLETED)
    assert completed.result.decision == ACCEPT
    assert completed.result.state.type == COMPLETED

    fetched = connection.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id))
    assert fetched.flow_run.state.type == COMPLETED
    history = client.list_flow_run_events(run_id)
    assert [e.state.type for e in history] == [
        StateType.PENDING,
        StateType.RUNNING,
        StateType.COMPLETED,
    ]
    assert [e.sequence for e in history] == [1, 2, 3]


def test_task_runs_and_logs_on_the_stream(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    run_id = new_run(connection)
    task = connection.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run_id, task_key="t", dynamic_key="0")
    ).task_run
    answer = connection.set_task_run_state(
        task_runs_pb2.SetTaskRunStateRequest(
            task_run_id=task.id, state=states_pb2.State(type=RUNNING)
        )
    )
    assert answer.result.decision == ACCEPT
    stored = connection.create_logs(log_request(run_id, "one", "two"))
    assert stored.created_count == 2
    assert [t.id for t in client.list_task_runs(run_id)] == [task.id]
    assert [line.message for line in client.list_logs(run_id)] == ["one", "two"]


def test_the_callers_request_is_not_changed(connection: EngineConnection) -> None:
    """The client adds a transition_id to its own copy, so a reused request stays reusable."""
    run_id = new_run(connection)
    request = flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=run_id, state=states_pb2.State(type=RUNNING)
    )
    connection.set_flow_run_state(request)
    assert request.transition_id == ""
    assert request.state.id == ""


def test_a_reused_request_is_a_new_proposal_each_time(connection: EngineConnection) -> None:
    """Each send gets its own transition_id, so re-proposing after WAIT is never a replay."""
    run_id = new_run(connection)
    request = flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=run_id, state=states_pb2.State(type=RUNNING)
    )
    assert connection.set_flow_run_state(request).result.decision == ACCEPT
    assert propose(connection, run_id, COMPLETED).result.decision == ACCEPT
    again = connection.set_flow_run_state(request)
    assert again.result.decision != ACCEPT  # judged against COMPLETED, not replayed
    assert again.result.state.type == COMPLETED


def test_a_repeated_transition_id_gets_the_first_answer(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    run_id = new_run(connection)
    transition = str(uuid.uuid4())
    first = propose(connection, run_id, RUNNING, transition_id=transition)
    again = propose(connection, run_id, RUNNING, transition_id=transition)
    assert again.result == first.result
    assert len(client.list_flow_run_events(run_id)) == 2


def test_many_threads_share_one_stream(connection: EngineConnection) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                run_id = new_run(connection)
                answer = propose(connection, run_id, RUNNING)
                assert answer.flow_run.id == run_id
                assert answer.result.decision == ACCEPT
                answer = propose(connection, run_id, COMPLETED)
                assert answer.flow_run.id == run_id
                assert answer.flow_run.state.type == COMPLETED
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_operations_handed_over_together_leave_in_few_messages(
    connection: EngineConnection,
) -> None:
    run_id = new_run(connection)  # answered: the server said it takes batches
    assert propose(connection, run_id, RUNNING).result.decision == ACCEPT
    count = 300
    answers: list[tuple[object, BaseException | None]] = []
    all_in = threading.Event()

    def record(response: object, error: BaseException | None) -> None:
        answers.append((response, error))  # on the loop: one at a time
        if len(answers) == count:
            all_in.set()

    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(30)

    connection.loop.call_soon_threadsafe(hold)  # the loop takes nothing until released
    assert entered.wait(10)
    sent_before = connection.messages_sent
    for index in range(count):
        request = task_runs_pb2.CreateTaskRunRequest(
            flow_run_id=run_id, task_key="t", dynamic_key=str(index), start=True
        )
        connection.create_task_run_then(request, record)
    release.set()
    assert all_in.wait(30)
    assert [error for _, error in answers] == [None] * count
    assert {response.result.decision for response, _ in answers} == {ACCEPT}  # type: ignore[attr-defined]
    # One wake-up took all of them; they left in full batches, not one message each.
    assert connection.messages_sent - sent_before == -(-count // MAX_BATCH)


def test_async_twins_work_from_another_event_loop(connection: EngineConnection) -> None:
    async def one_run() -> int:
        created = await connection.acreate_flow_run(
            flow_runs_pb2.CreateFlowRunRequest(flow_name="client-tests-async")
        )
        run_id = created.flow_run.id
        await connection.aset_flow_run_state(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run_id, state=states_pb2.State(type=RUNNING)
            )
        )
        await connection.acreate_logs(log_request(run_id, "async"))
        done = await connection.aset_flow_run_state(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run_id, state=states_pb2.State(type=COMPLETED)
            )
        )
        fetched = await connection.aget_flow_run(
            flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id)
        )
        assert fetched.flow_run.state.type == COMPLETED
        return done.result.decision

    async def main() -> list[int]:
        decisions = await asyncio.gather(*(one_run() for _ in range(20)))
        await connection.aflush()
        return decisions

    assert asyncio.run(main()) == [ACCEPT] * 20


def test_async_twins_work_on_the_background_loop(connection: EngineConnection) -> None:
    async def on_background_loop() -> int:
        created = await connection.acreate_flow_run(
            flow_runs_pb2.CreateFlowRunRequest(flow_name="client-tests-async")
        )
        return created.flow_run.state.type

    assert background_loop().run_sync(on_background_loop(), timeout=10) == PENDING


def test_blocking_calls_on_the_background_loop_are_refused(connection: EngineConnection) -> None:
    async def blocking_inside_loop() -> None:
        connection.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=str(uuid.uuid4())))

    with pytest.raises(RuntimeError, match="async twin"):
        background_loop().run_sync(blocking_inside_loop(), timeout=10)


def test_nowait_logs_are_stored_by_flush(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    run_id = new_run(connection)
    for index in range(50):
        connection.create_logs_nowait(log_request(run_id, f"line {index}"))
    connection.flush(timeout=10)
    assert [line.message for line in client.list_logs(run_id)] == [
        f"line {index}" for index in range(50)
    ]


def test_an_oversized_message_is_refused_alone(connection: EngineConnection) -> None:
    run_id = new_run(connection)
    with pytest.raises(InvalidRequest) as caught:
        connection.create_logs(log_request(run_id, "x" * (5 * 1024 * 1024)))
    assert caught.value.reason == "MESSAGE_TOO_LARGE"
    assert "result storage" in caught.value.message
    assert propose(connection, run_id, RUNNING).result.decision == ACCEPT


def test_a_reused_idempotency_key_is_object_already_exists(connection: EngineConnection) -> None:
    key = f"key-{uuid.uuid4()}"
    first = new_run(connection, idempotency_key=key)
    with pytest.raises(ObjectAlreadyExists) as caught:
        new_run(connection, idempotency_key=key)
    assert caught.value.code == "ALREADY_EXISTS"
    assert caught.value.reason
    assert first in caught.value.message or key in caught.value.message


def test_a_failed_operation_leaves_the_stream_open(connection: EngineConnection) -> None:
    with pytest.raises(ObjectNotFound):
        stream_get(connection, str(uuid.uuid4()))
    run_id = new_run(connection)
    assert propose(connection, run_id, RUNNING).result.decision == ACCEPT


# ---------------------------------------------------------------------------- reconnects


def test_operations_fail_with_service_unavailable_after_the_retry_timeout() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    conn = connect(address, retry_timeout=0.5, keepalive_time_ms=20000)
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            stream_get(conn, str(uuid.uuid4()))
        assert time.monotonic() - started < 5
        message = caught.value.message
        assert address in message
        assert "headwater server start" in message
        assert "HEADWATER_API_URL" in message
    finally:
        conn.close()


def test_close_fails_what_is_unanswered_and_everything_after() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    conn = connect(address, retry_timeout=60, keepalive_time_ms=20000)
    outcome: list[BaseException] = []

    def blocked_caller() -> None:
        try:
            stream_get(conn, str(uuid.uuid4()))
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=blocked_caller)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    conn.close(timeout=0.2)
    caller.join(5)
    assert time.monotonic() - started < 5
    assert [type(e) for e in outcome] == [ServiceUnavailable]
    assert outcome[0].reason == "CONNECTION_CLOSED"
    with pytest.raises(ServiceUnavailable, match="closed"):
        stream_get(conn, str(uuid.uuid4()))
    conn.flush(timeout=1)  # nothing left to wait for


def test_a_server_without_the_engine_stream_fails_fast_and_says_so() -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    other = grpc.server(ThreadPoolExecutor(max_workers=1))  # serves no Headwater service
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    conn = connect(f"127.0.0.1:{port}", retry_timeout=30, keepalive_time_ms=20000)
    try:
        started = time.monotonic()
        with pytest.raises(ServiceError) as caught:
            stream_get(conn, str(uuid.uuid4()))
        assert time.monotonic() - started < 5
        assert caught.value.code == "UNIMPLEMENTED"
        assert f"127.0.0.1:{port}" in caught.value.message
        assert "HEADWATER_API_URL" in caught.value.message
    finally:
        conn.close()
        other.stop(None)


class Workload:
    """Threads that keep creating runs and taking them PENDING -> RUNNING -> COMPLETED, with a
    waited-for and a fire-and-forget log line each, until stopped: so operations are always in
    flight when the server goes away."""

    def __init__(self, conn: EngineConnection, flow_name: str, workers: int = 4) -> None:
        self.conn = conn
        self.flow_name = flow_name
        self.errors: list[BaseException] = []
        self.runs = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(i,)) for i in range(workers)]

    def __enter__(self) -> Workload:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _work(self, index: int) -> None:
        conn = self.conn
        try:
            while not self._stop.is_set():
                run_id = new_run(conn, flow_name=self.flow_name)
                with self._lock:
                    self.runs += 1
                conn.create_logs(log_request(run_id, f"{index} start"))
                assert propose(conn, run_id, RUNNING).result.decision == ACCEPT
                conn.create_logs_nowait(log_request(run_id, f"{index} work"))
                assert propose(conn, run_id, COMPLETED).result.decision == ACCEPT
        except BaseException as exc:
            self.errors.append(exc)


def assert_each_run_applied_once(client: HeadwaterClient, flow_name: str, count: int) -> None:
    runs = client.list_flow_runs(flow_name=flow_name, limit=10_000)
    assert len(runs) == count, "a create was lost or applied twice"
    for run in runs:
        assert run.state.type is StateType.COMPLETED
        assert run.run_count == 1
        history = [state.type for state in client.list_flow_run_states(run.id)]
        assert history == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
        assert len(client.list_logs(run.id)) == 2


def test_reconnect_after_an_in_process_restart_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    server = InProcessServer(f"sqlite:///{tmp_path / 'headwater.db'}").start()
    conn = connect(server.address, retry_timeout=30, keepalive_time_ms=20000)
    flow_name = f"restart-{uuid.uuid4().hex[:8]}"
    try:
        with Workload(conn, flow_name) as workload:
            time.sleep(0.3)
            server.stop(grace=0.5)
            time.sleep(0.3)  # operations pile up while nothing listens
            server.start()
            time.sleep(0.3)
        conn.flush(timeout=30)
        assert workload.errors == []
        assert conn.streams_opened >= 2
        assert conn.resent >= 1, "no operation was in flight across the restart"
        with HeadwaterClient(server.address) as unary:
            assert_each_run_applied_once(unary, flow_name, workload.runs)
    finally:
        conn.close()
        server.stop()


@pytest.mark.integration
@pytest.mark.parametrize(
    "database",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def test_reconnect_after_a_server_subprocess_restart(
    make_server, database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    server = make_server(database_url=url)
    conn = connect(server.address, retry_timeout=30, keepalive_time_ms=20000)
    flow_name = f"restart-{uuid.uuid4().hex[:8]}"
    try:
        with Workload(conn, flow_name) as workload:
            time.sleep(0.3)
            server.restart()
            time.sleep(0.3)
        conn.flush(timeout=30)
        assert workload.errors == []
        assert conn.resent >= 1, "no operation was in flight across the restart"
        with HeadwaterClient(server.address) as unary:
            assert_each_run_applied_once(unary, flow_name, workload.runs)
    finally:
        conn.close()

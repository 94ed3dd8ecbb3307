"""The engine connection (one Connect stream) and the unary client, against real servers.

Most tests run the real server in this process (``start_server`` on the SDK's background loop,
SQLite in a temporary directory); the restart tests also use a real server subprocess.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from headwater._transport.runtime import background_loop, connect
from headwater._transport.stream.connection import EngineConnection
from headwater.client import HeadwaterClient
from headwater.exceptions import (
    InvalidRequest,
    ObjectAlreadyExists,
    ObjectNotFound,
    ServiceError,
    ServiceUnavailable,
)
from headwater.v1 import flow_runs_pb2, logs_pb2, states_pb2, task_runs_pb2

RUNNING = states_pb2.STATE_TYPE_RUNNING
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
PENDING = states_pb2.STATE_TYPE_PENDING
ACCEPT = states_pb2.DECISION_ACCEPT


class InProcessServer:
    """The real server on the SDK's background loop, restartable on the same port."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = 0
        self.address = ""
        self._running = None

    def start(self) -> InProcessServer:
        from headwater_server.server import start_server

        self._running = background_loop().run_sync(
            start_server(f"127.0.0.1:{self.port}", self.database_url), timeout=30
        )
        self.port = self._running.port
        self.address = self._running.address
        return self

    def stop(self, grace: float = 1.0) -> None:
        running, self._running = self._running, None
        if running is not None:
            background_loop().run_sync(running.stop(grace), timeout=30)


@pytest.fixture(scope="module")
def inproc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    home = tmp_path_factory.mktemp("client-home")
    server = InProcessServer(f"sqlite:///{home / 'headwater.db'}").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def connection(inproc: InProcessServer) -> Iterator[EngineConnection]:
    conn = connect(inproc.address, retry_timeout=10, keepalive_time_ms=20000)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def client(inproc: InProcessServer) -> Iterator[HeadwaterClient]:
    with HeadwaterClient(inproc.address) as unary:
        yield unary


def new_run(conn: EngineConnection, flow_name: str = "client-tests", **fields) -> str:
    response = conn.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name=flow_name, **fields)
    )
    return response.flow_run.id


def propose(conn: EngineConnection, run_id: str, state_type: int, **fields):
    return conn.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id, state=states_pb2.State(type=state_type), **fields
        )
    )


def log_request(run_id: str, *messages: str) -> logs_pb2.CreateLogsRequest:
    """Log lines stamped a microsecond apart, so the service lists them in this order."""
    request = logs_pb2.CreateLogsRequest()
    for message in messages:
        line = request.logs.add(flow_run_id=run_id, logger_name="test", level=20, message=message)
        line.log_time.FromNanoseconds(time.time_ns() // 1000 * 1000)
        time.sleep(0.000_002)
    return request


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
    assert [e.state_changed.type for e in history] == [PENDING, RUNNING, COMPLETED]
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


# ------------------------------------------------------------------------- error mapping


def stream_get(connection: EngineConnection, run_id: str) -> None:
    connection.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id))


def unary_get(client: HeadwaterClient, run_id: str) -> None:
    client.get_flow_run(run_id)


@pytest.mark.parametrize("path", ["stream", "unary"])
def test_a_malformed_id_is_invalid_request_naming_the_field(
    path: str, connection: EngineConnection, client: HeadwaterClient
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        if path == "stream":
            stream_get(connection, "not-a-uuid")
        else:
            unary_get(client, "not-a-uuid")
    error = caught.value
    assert error.code == "INVALID_ARGUMENT"
    assert error.reason
    assert "flow_run_id" in error.message
    assert "not-a-uuid" in error.message


@pytest.mark.parametrize("path", ["stream", "unary"])
def test_an_unknown_run_is_object_not_found_with_its_reason(
    path: str, connection: EngineConnection, client: HeadwaterClient
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(ObjectNotFound) as caught:
        if path == "stream":
            stream_get(connection, missing)
        else:
            unary_get(client, missing)
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.reason == "FLOW_RUN_NOT_FOUND"
    assert missing in caught.value.message


def test_stream_and_unary_errors_are_the_same(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(ServiceError) as on_stream:
        stream_get(connection, missing)
    with pytest.raises(ServiceError) as on_unary:
        unary_get(client, missing)
    assert type(on_stream.value) is type(on_unary.value)
    assert (on_stream.value.code, on_stream.value.reason, on_stream.value.message) == (
        on_unary.value.code,
        on_unary.value.reason,
        on_unary.value.message,
    )


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


def test_errors_survive_a_pickle_round_trip(connection: EngineConnection) -> None:
    import pickle

    with pytest.raises(ObjectNotFound) as caught:
        stream_get(connection, str(uuid.uuid4()))
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (type(copy), copy.reason, copy.message) == (
        ObjectNotFound,
        caught.value.reason,
        caught.value.message,
    )


# ------------------------------------------------------------------- unary client extras


def test_list_flow_runs_filters_and_limits(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    flow = f"listing-{uuid.uuid4().hex[:8]}"
    ids = [new_run(connection, flow_name=flow) for _ in range(5)]
    propose(connection, ids[0], RUNNING)
    runs = client.list_flow_runs(flow_name=flow)
    assert sorted(r.id for r in runs) == sorted(ids)
    assert [r.id for r in client.list_flow_runs(flow_name=flow, state_types=["running"])] == [
        ids[0]
    ]
    assert len(client.list_flow_runs(flow_name=flow, limit=2)) == 2
    assert client.get_flow(runs[0].flow_id).name == flow


def test_watch_streams_until_the_run_finishes(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    run_id = new_run(connection)
    seen: list[int] = []

    def watch() -> None:
        for message in client.watch_flow_run(run_id):
            if message.WhichOneof("kind") == "event":
                seen.append(message.event.state_changed.type)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.2)
    propose(connection, run_id, RUNNING)
    propose(connection, run_id, COMPLETED)
    watcher.join(10)
    assert not watcher.is_alive()
    assert seen == [PENDING, RUNNING, COMPLETED]


def test_cancel_flow_run(connection: EngineConnection, client: HeadwaterClient) -> None:
    run_id = new_run(connection)
    cancelled = client.cancel_flow_run(run_id, reason="not needed")
    assert cancelled.state.type == states_pb2.STATE_TYPE_CANCELLED


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
        assert run.state.type == COMPLETED
        assert run.run_count == 1
        history = [e.state_changed.type for e in client.list_flow_run_events(run.id)]
        assert history == [PENDING, RUNNING, COMPLETED]
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


@pytest.mark.integration
def test_unary_client_against_a_server_subprocess(sqlite_server) -> None:
    conn = connect(sqlite_server.address, retry_timeout=5, keepalive_time_ms=20000)
    try:
        run_id = new_run(conn, flow_name="subprocess")
        propose(conn, run_id, RUNNING)
        with HeadwaterClient(sqlite_server.address) as unary:
            assert unary.get_flow_run(run_id).state.type == RUNNING
            with pytest.raises(ObjectNotFound):
                unary.get_flow_run(str(uuid.uuid4()))
    finally:
        conn.close()


# ------------------------------------------------------------------ process-wide wiring


@pytest.mark.integration
def test_the_default_transport_starts_the_embedded_server_and_exits_cleanly(tmp_path: Path) -> None:
    """With no HEADWATER_API_URL a process gets an in-process server on its home's database."""
    code = """
import time
from headwater._transport.runtime import default_transport
from headwater.v1 import flow_runs_pb2, states_pb2
conn = default_transport().connection
assert default_transport().connection is conn
run = conn.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="embedded")).flow_run
conn.set_flow_run_state(flow_runs_pb2.SetFlowRunStateRequest(
    flow_run_id=run.id, state=states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING)))
print(conn.address)
print(run.id)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    address, run_id = result.stdout.split()
    assert address.startswith("unix-abstract:headwater-")
    assert (tmp_path / "headwater.db").exists()

    # The run is in the home's database after the process is gone.
    check = f"""
from headwater.client import HeadwaterClient
print(HeadwaterClient().get_flow_run({run_id!r}).state.name)
"""
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Running"

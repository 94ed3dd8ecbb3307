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
from typing import Any

import pytest
from headwater import StateType
from headwater._transport.runtime import background_loop, connect
from headwater._transport.stream.connection import EngineConnection
from headwater.client import FlowRunEvent, HeadwaterClient
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


@pytest.mark.integration
def test_list_flow_runs_by_name_is_filtered_by_the_service(server) -> None:
    from headwater.exceptions import InvalidRequest

    conn = connect(server.address, retry_timeout=10, keepalive_time_ms=20000)
    flow = f"by-name-{uuid.uuid4().hex[:8]}"
    name = f"wanted-{uuid.uuid4().hex[:8]}"
    try:
        wanted = [new_run(conn, flow_name=flow, name=name) for _ in range(3)]
        others = [new_run(conn, flow_name=flow) for _ in range(3)]
    finally:
        conn.close()
    with HeadwaterClient(server.address) as unary:
        assert [run.id for run in unary.list_flow_runs(name=name)] == wanted[::-1]
        assert [run.id for run in unary.list_flow_runs(name=name, limit=2)] == wanted[:0:-1]
        assert len(unary.list_flow_runs(flow_name=flow)) == len(wanted + others)
        assert unary.list_flow_runs(name=name, flow_name=f"{flow}-other") == []
        # The service checks the filter: only a name it could store reaches the database.
        with pytest.raises(InvalidRequest, match=r"filter\.name"):
            unary.list_flow_runs(name="n" * 256)


def test_watch_streams_until_the_run_finishes(
    connection: EngineConnection, client: HeadwaterClient
) -> None:
    run_id = new_run(connection)
    seen: list[StateType] = []

    def watch() -> None:
        for item in client.watch_flow_run(run_id):
            if isinstance(item, FlowRunEvent):
                seen.append(item.state.type)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.2)
    propose(connection, run_id, RUNNING)
    propose(connection, run_id, COMPLETED)
    watcher.join(10)
    assert not watcher.is_alive()
    assert seen == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]


def test_cancel_flow_run(connection: EngineConnection, client: HeadwaterClient) -> None:
    run_id = new_run(connection)
    cancelled = client.cancel_flow_run(run_id, reason="not needed")
    assert cancelled.state.type is StateType.CANCELLED


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


@pytest.mark.integration
def test_unary_client_against_a_server_subprocess(sqlite_server) -> None:
    conn = connect(sqlite_server.address, retry_timeout=5, keepalive_time_ms=20000)
    try:
        run_id = new_run(conn, flow_name="subprocess")
        propose(conn, run_id, RUNNING)
        with HeadwaterClient(sqlite_server.address) as unary:
            assert unary.get_flow_run(run_id).state.type is StateType.RUNNING
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
import asyncio
from headwater.client import HeadwaterClient, get_client
print(HeadwaterClient().get_flow_run({run_id!r}).state.name)

async def main():
    async with get_client() as client:
        print((await client.get_flow_run({run_id!r})).state.name, client.address)

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    sync_line, async_line = result.stdout.splitlines()
    assert sync_line == "Running"
    state_name, async_address = async_line.split()
    assert state_name == "Running"
    assert async_address.startswith("unix-abstract:headwater-")


# ------------------------------------------- public clients in SDK types (issue 9, item 3)


def finished_run(conn: EngineConnection, flow_name: str) -> tuple[str, str]:
    """A run with parameters, tags, a task run, two log lines and a JSON result; its id and
    its task run's id."""
    run_id = new_run(conn, flow_name=flow_name, parameters_json='{"day": "2026-11-30"}')
    propose(conn, run_id, RUNNING)
    task = conn.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run_id, task_key="load", dynamic_key="0")
    ).task_run
    conn.create_logs(log_request(run_id, "loading", "loaded"))
    conn.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id,
            state=states_pb2.State(
                type=COMPLETED, result=states_pb2.StateResult(json='{"rows": 5}')
            ),
        )
    )
    return run_id, task.id


def assert_sdk_records(seen: dict[str, Any], run_id: str, task_id: str, flow_name: str) -> None:
    """What both clients must hand back for `finished_run`: SDK records, never messages."""
    import datetime as dt

    from headwater import State
    from headwater.client import Flow, FlowRun, Log, TaskRun

    run = seen["run"]
    assert isinstance(run, FlowRun)
    assert (run.id, run.flow_name, run.run_count) == (run_id, flow_name, 1)
    assert run.parameters == {"day": "2026-11-30"}
    assert isinstance(run.state, State)
    assert run.state.is_completed()
    assert run.state.data == {"rows": 5}
    assert isinstance(run.start_time, dt.datetime)
    assert run.start_time.tzinfo is not None
    assert run.end_time >= run.start_time
    assert run.created is not None
    assert run.last_sequence == 3
    assert type(run.raw).__name__ == "FlowRun"  # the message stays reachable
    assert run.raw.id == run_id

    assert [r.id for r in seen["runs"]] == [run_id]
    assert [r.id for r in seen["by_name"]] == [run_id]

    states = seen["states"]
    assert [s.type for s in states] == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
    assert all(isinstance(s, State) for s in states)
    times = [s.timestamp for s in states]
    assert times == sorted(times)
    assert [e.sequence for e in seen["events"]] == [1, 2, 3]

    task_runs = seen["task_runs"]
    assert [type(t) for t in task_runs] == [TaskRun]
    assert (task_runs[0].id, task_runs[0].flow_run_id, task_runs[0].task_key) == (
        task_id,
        run_id,
        "load",
    )

    logs = seen["logs"]
    assert [type(line) for line in logs] == [Log, Log]
    assert [(line.message, line.level_name, line.logger_name) for line in logs] == [
        ("loading", "INFO", "test"),
        ("loaded", "INFO", "test"),
    ]
    assert all(line.time is not None and line.task_run_id is None for line in logs)

    assert isinstance(seen["flow"], Flow)
    assert seen["flow"].name == flow_name
    assert [f.id for f in seen["flows"]] == [run.flow_id]
    assert seen["result"] == {"rows": 5}

    watched = seen["watched"]
    assert isinstance(watched[0], FlowRun)
    assert [item.state.type for item in watched[1:]] == [StateType.COMPLETED]

    cancelled = seen["cancelled"]
    assert isinstance(cancelled, FlowRun)
    assert cancelled.state.type is StateType.CANCELLED
    assert cancelled.state.message == "not needed"


@pytest.mark.integration
def test_the_sync_client_returns_sdk_records(server) -> None:
    from headwater.client import get_client

    conn = connect(server.address, retry_timeout=10, keepalive_time_ms=20000)
    flow_name = f"sync-records-{uuid.uuid4().hex[:8]}"
    try:
        run_id, task_id = finished_run(conn, flow_name)
        to_cancel = new_run(conn, flow_name=f"{flow_name}-other")
    finally:
        conn.close()
    with get_client(sync_client=True, address=server.address) as client:
        assert isinstance(client, HeadwaterClient)
        run = client.get_flow_run(run_id)
        seen = {
            "run": run,
            "runs": client.list_flow_runs(flow_name=flow_name),
            "by_name": client.list_flow_runs(name=run.name, flow_name=flow_name),
            "states": client.list_flow_run_states(run_id),
            "events": client.list_flow_run_events(run_id),
            "task_runs": client.list_task_runs(run_id),
            "logs": client.list_logs(run_id),
            "flow": client.get_flow(run.flow_id),
            "flows": client.list_flows(name=flow_name),
            "result": client.get_flow_run_result(run_id),
            "watched": list(client.watch_flow_run(run_id, after_sequence=2)),
            "cancelled": client.cancel_flow_run(to_cancel, reason="not needed"),
        }
    assert_sdk_records(seen, run_id, task_id, flow_name)


@pytest.mark.integration
def test_the_async_client_returns_the_same_sdk_records(server) -> None:
    from headwater.client import AsyncHeadwaterClient, get_client

    conn = connect(server.address, retry_timeout=10, keepalive_time_ms=20000)
    flow_name = f"async-records-{uuid.uuid4().hex[:8]}"
    try:
        run_id, task_id = finished_run(conn, flow_name)
        to_cancel = new_run(conn, flow_name=f"{flow_name}-other")
    finally:
        conn.close()

    async def read_everything() -> dict[str, Any]:
        async with get_client(address=server.address) as client:
            assert isinstance(client, AsyncHeadwaterClient)
            run = await client.get_flow_run(run_id)
            runs, states, events = await asyncio.gather(
                client.list_flow_runs(flow_name=flow_name),
                client.list_flow_run_states(run_id),
                client.list_flow_run_events(run_id),
            )
            return {
                "run": run,
                "runs": runs,
                "by_name": await client.list_flow_runs(name=run.name, flow_name=flow_name),
                "states": states,
                "events": events,
                "task_runs": await client.list_task_runs(run_id),
                "logs": await client.list_logs(run_id),
                "flow": await client.get_flow(run.flow_id),
                "flows": await client.list_flows(name=flow_name),
                "result": await client.get_flow_run_result(run_id),
                "watched": [item async for item in client.watch_flow_run(run_id, 2)],
                "cancelled": await client.cancel_flow_run(to_cancel, reason="not needed"),
            }

    assert_sdk_records(asyncio.run(read_everything()), run_id, task_id, flow_name)


@pytest.mark.integration
def test_both_clients_raise_the_sdks_typed_errors(sqlite_server) -> None:
    from headwater.client import get_client

    missing = str(uuid.uuid4())
    with get_client(sync_client=True, address=sqlite_server.address) as client:
        with pytest.raises(ObjectNotFound) as not_found:
            client.get_flow_run(missing)
        with pytest.raises(InvalidRequest) as invalid:
            client.list_logs("not-a-uuid")
        with pytest.raises(ObjectNotFound):
            client.get_flow_run_result(missing)
    assert not_found.value.reason == "FLOW_RUN_NOT_FOUND"
    assert missing in not_found.value.message
    assert "not-a-uuid" in invalid.value.message

    async def the_same_on_asyncio() -> tuple[ServiceError, ServiceError]:
        async with get_client(address=sqlite_server.address) as client:
            with pytest.raises(ObjectNotFound) as async_not_found:
                await client.get_flow_run(missing)
            with pytest.raises(InvalidRequest) as async_invalid:
                async for _ in client.watch_flow_run("not-a-uuid"):
                    pass
            return async_not_found.value, async_invalid.value

    async_not_found, async_invalid = asyncio.run(the_same_on_asyncio())
    assert (async_not_found.reason, async_not_found.message) == (
        not_found.value.reason,
        not_found.value.message,
    )
    assert async_invalid.code == "INVALID_ARGUMENT"


def test_an_unreachable_server_is_service_unavailable_naming_it() -> None:
    from headwater.client import get_client

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"

    async def unreachable() -> None:
        async with get_client(address=address, timeout=5) as client:
            await client.list_flows()

    with pytest.raises(ServiceUnavailable) as caught:
        asyncio.run(unreachable())
    assert address in caught.value.message
    assert "HEADWATER_API_URL" in caught.value.message


@pytest.mark.parametrize(
    ("address", "problem"),
    [("127.0.0.1", "has no port"), ("http://127.0.0.1:4200/api", "with a path")],
)
def test_an_address_that_can_never_work_is_refused_before_dialling(
    address: str, problem: str
) -> None:
    from headwater.client import get_client

    with pytest.raises(ValueError, match=problem) as caught:
        get_client(sync_client=True, address=address)
    assert address in str(caught.value)

    async def open_async() -> None:
        async with get_client(address=address):
            pass

    with pytest.raises(ValueError, match=problem):
        asyncio.run(open_async())


def test_the_async_client_must_be_entered_first() -> None:
    from headwater.client import AsyncHeadwaterClient

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(AsyncHeadwaterClient("127.0.0.1:1").list_flows())


@pytest.mark.integration
def test_a_persisted_result_is_read_back_in_a_later_process(sqlite_server, tmp_path: Path) -> None:
    """One process runs flows that persist their results; another reads them with either
    client, from result storage, as SDK values and typed failures."""
    flow = f"persisted-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path)
    env["HEADWATER_API_URL"] = sqlite_server.address
    producer = f"""
from headwater import flow

@flow(name={flow!r}, persist_result=True)
def produce(n: int) -> set[int]:
    if n < 0:
        raise ValueError("negative")
    return set(range(n))  # not JSON: persisted with cloudpickle

produce(3)
try:
    produce(-1)
except ValueError:
    pass
"""
    made = subprocess.run(
        [sys.executable, "-c", producer], env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr

    reader = f"""
import asyncio
from headwater.client import get_client
from headwater.exceptions import FailedRun

with get_client(sync_client=True) as client:
    done, failed = sorted(
        client.list_flow_runs(flow_name={flow!r}), key=lambda run: run.state.is_completed()
    )[::-1]
    print(sorted(client.get_flow_run_result(done.id)))
    error = client.get_flow_run_result(failed.id, raise_on_failure=False)
    print(type(error).__name__, error)

async def main():
    async with get_client() as client:
        print(sorted(await client.get_flow_run_result(done.id)))
        try:
            await client.get_flow_run_result(failed.id)
        except Exception as exc:
            print("raised", type(exc).__name__)

asyncio.run(main())
"""
    read = subprocess.run(
        [sys.executable, "-c", reader], env=env, capture_output=True, text=True, timeout=60
    )
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    assert lines[0] == "[0, 1, 2]"
    assert lines[1].startswith("FailedRun ") and "negative" in lines[1]
    assert lines[2] == "[0, 1, 2]"
    assert lines[3] == "raised FailedRun"

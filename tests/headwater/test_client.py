"""The public clients (sync and async) and the error mapping they share with the engine
stream, against real servers.

Most tests run the real server in this process (`stream_support.InProcessServer`); some use a
real server subprocess. The engine stream's own tests are in
tests/headwater/_transport/test_stream_connection.py.
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
from pathlib import Path
from typing import Any

import pytest
from headwater import StateType
from headwater._transport.runtime import connect
from headwater._transport.stream.connection import EngineConnection
from headwater.client import FlowRunEvent, HeadwaterClient
from headwater.exceptions import (
    InvalidRequest,
    ObjectNotFound,
    ServiceError,
    ServiceUnavailable,
)
from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2
from stream_support import (
    COMPLETED,
    RUNNING,
    log_request,
    new_run,
    propose,
    stream_get,
)
from test_cli import run_cli

# ------------------------------------------------------------------------- error mapping


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
    assert run.last_sequence == 6  # its three states, its task run's PENDING, two log lines
    assert type(run.raw).__name__ == "FlowRun"  # the message stays reachable
    assert run.raw.id == run_id

    assert [r.id for r in seen["runs"]] == [run_id]
    assert [r.id for r in seen["by_name"]] == [run_id]

    states = seen["states"]
    assert [s.type for s in states] == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
    assert all(isinstance(s, State) for s in states)
    times = [s.timestamp for s in states]
    assert times == sorted(times)
    # The task run's PENDING (3) and the log lines (4, 5) are events of the run too, without
    # a flow run state.
    assert [e.sequence for e in seen["events"]] == [1, 2, 3, 4, 5, 6]
    assert [e.state is None for e in seen["events"]] == [False, False, True, True, True, False]
    assert [e.log and e.log.message for e in seen["events"]] == [
        None, None, None, "loading", "loaded", None,
    ]  # fmt: skip

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
    # The task run's PENDING and the log lines are events too, without a flow state.
    assert [item.state and item.state.type for item in watched[1:]] == [
        None,
        None,
        None,
        StateType.COMPLETED,
    ]

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


@pytest.mark.integration
def test_a_result_that_was_never_stored_is_a_missing_result_not_none(
    sqlite_server, tmp_path: Path
) -> None:
    """A run that returned a value the service could not hold (not JSON, or too large to send
    inline) and did not persist it: another process asking for the result gets MissingResult
    saying what to change, where a bare None would pass for the run's real answer. A run that
    returned None reads back None, and the CLI tells the two apart."""
    flow = f"unstored-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path)
    env["HEADWATER_API_URL"] = sqlite_server.address
    producer = f"""
from headwater import flow, task

@task
def a_set() -> set[int]:
    return {{1, 2}}

@flow(name={flow!r})
def produce(kind: str):
    if kind == "set":
        return a_set()
    if kind == "large":
        return "x" * 70_000
    return None

for kind in ("set", "large", "none"):
    produce(kind)
"""
    made = subprocess.run(
        [sys.executable, "-c", producer], env=env, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr

    reader = f"""
from headwater.client import get_client
from headwater.exceptions import MissingResult

with get_client(sync_client=True) as client:
    for run in client.list_flow_runs(flow_name={flow!r}):
        kind = run.parameters["kind"]
        try:
            print(kind, "value", repr(client.get_flow_run_result(run.id)))
        except MissingResult as exc:
            print(kind, "missing", exc)
        for task_run in client.list_task_runs(run.id):
            try:
                print(kind, "task value", repr(task_run.state.result()))
            except MissingResult as exc:
                print(kind, "task missing", exc)
    for run in client.list_flow_runs(flow_name={flow!r}):
        print(run.parameters["kind"], run.id)
"""
    read = subprocess.run(
        [sys.executable, "-c", reader], env=env, capture_output=True, text=True, timeout=60
    )
    assert read.returncode == 0, read.stderr
    lines = sorted(read.stdout.splitlines()[:-3])
    assert [line.split(" ", 2)[:2] for line in lines] == [
        ["large", "missing"],
        ["none", "value"],
        ["set", "missing"],
        ["set", "task"],
    ]
    assert lines[1] == "none value None"
    for missing in (lines[0], lines[2], lines[3]):
        assert "result was not stored" in missing and "persist_result=True" in missing
    assert lines[3].startswith("set task missing ")

    runs = {line.split(" ")[0]: line.split(" ")[1] for line in read.stdout.splitlines()[-3:]}
    for kind, shown in (("set", "not stored"), ("large", "not stored"), ("none", "null")):
        inspected = run_cli(
            "flow-run", "inspect", runs[kind], api_url=sqlite_server.address, home=tmp_path
        )
        assert inspected.returncode == 0, inspected.stderr
        result_row = next(
            line for line in inspected.stdout.splitlines() if line.startswith("Result")
        )
        assert result_row.split(None, 1)[1].startswith(shown), inspected.stdout
    task_row = next(
        line
        for line in run_cli(
            "flow-run", "inspect", runs["set"], api_url=sqlite_server.address, home=tmp_path
        ).stdout.splitlines()
        if line.startswith("a_set-0")
    )
    assert task_row.rstrip().endswith("not stored"), task_row


@pytest.mark.integration
def test_prefects_client_module_and_method_names_read_the_same_records(server) -> None:
    """``from prefect.client.orchestration import get_client`` and Prefect's ``read_*``
    names port by changing the import: the same calls, the same records."""
    from headwater.client.orchestration import PrefectClient, SyncPrefectClient, get_client

    conn = connect(server.address, retry_timeout=10, keepalive_time_ms=20000)
    flow_name = f"prefect-names-{uuid.uuid4().hex[:8]}"
    try:
        run_id, task_id = finished_run(conn, flow_name)
    finally:
        conn.close()
    tag = f"prefect-names-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True, address=server.address) as client:
        assert isinstance(client, SyncPrefectClient)
        run = client.read_flow_run(run_id)
        assert (run.id, run.flow_name, run.state.name) == (run_id, flow_name, "Completed")
        assert client.read_flow(run.flow_id).name == flow_name
        assert [s.name for s in client.read_flow_run_states(run_id)] == [
            s.name for s in client.list_flow_run_states(run_id)
        ]
        assert client.read_task_run(task_id).flow_run_id == run_id
        assert [s.name for s in client.read_task_run_states(task_id)] == [
            s.name for s in client.list_task_run_states(task_id)
        ]
        client.create_concurrency_limit(tag, 2)
        assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == 2
        assert client.reset_concurrency_limit_by_tag(tag).active_slots == ()
        client.delete_concurrency_limit_by_tag(tag)
        with pytest.raises(ObjectNotFound):
            client.read_concurrency_limit_by_tag(tag)
        with pytest.raises(ObjectNotFound):
            client.read_deployment_by_name(f"{flow_name}/none")
        with pytest.raises(ObjectNotFound):
            client.read_work_pool(f"{flow_name}-pool")

    async def read_async() -> tuple[str, str]:
        async with get_client(address=server.address) as client:
            assert isinstance(client, PrefectClient)
            flow_run = await client.read_flow_run(run_id)
            task_run = await client.read_task_run(task_id)
            return flow_run.id, task_run.id

    assert asyncio.run(read_async()) == (run_id, task_id)

"""The in-process server: start, health, addresses, and a shutdown that clients can live with."""

from __future__ import annotations

import asyncio
import logging
import uuid

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from headwater.v1 import (
    engine_pb2,
    engine_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    states_pb2,
)
from headwater_server.server import RunningServer, start_server
from headwater_server.servicers import SERVICE_NAMES

FR = flow_runs_pb2


async def _new_run(channel: grpc.aio.Channel) -> FR.FlowRun:
    stub = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
    response = await stub.CreateFlowRun(FR.CreateFlowRunRequest(flow_name="in-process"))
    return response.flow_run


async def test_start_serves_health_for_every_service_and_stop_is_clean(database_url: str) -> None:
    server = await start_server("127.0.0.1:0", database_url)
    assert server.port > 0
    assert server.address == f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", *SERVICE_NAMES):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, name
            run = await _new_run(channel)
            assert run.state.type == states_pb2.STATE_TYPE_PENDING
    finally:
        await server.stop(1)
    await server.stop(1)  # idempotent


async def test_a_unix_abstract_address_works(sqlite_url: str) -> None:
    address = f"unix-abstract:headwater-test-{uuid.uuid4().hex}"
    server = await start_server(address, sqlite_url)
    try:
        assert server.address == address
        async with grpc.aio.insecure_channel(address) as channel:
            assert (await _new_run(channel)).id
    finally:
        await server.stop(1)


async def test_a_busy_port_is_a_clear_error(sqlite_url: str) -> None:
    first = await start_server("127.0.0.1:0", sqlite_url)
    try:
        with pytest.raises(RuntimeError, match="another port"):
            await start_server(first.address, sqlite_url)
    finally:
        await first.stop(1)


async def test_stop_answers_in_flight_engine_operations_then_ends_with_unavailable(
    sqlite_url: str,
) -> None:
    server = await start_server("127.0.0.1:0", sqlite_url)
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = engine_pb2_grpc.EngineServiceStub(channel).Connect()
        await call.write(
            engine_pb2.ConnectRequest(
                sequence=1, create_flow_run=FR.CreateFlowRunRequest(flow_name="stream")
            )
        )
        answer = await call.read()
        assert answer.sequence == 1 and answer.create_flow_run.flow_run.id
        await server.stop(2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (caught.value.details() or "")


async def test_stop_ends_a_watch_with_unavailable_and_the_sequence_to_resume_from(
    sqlite_url: str,
) -> None:
    server = await start_server("127.0.0.1:0", sqlite_url)
    async with grpc.aio.insecure_channel(server.address) as channel:
        run = await _new_run(channel)
        stub = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
        call = stub.WatchFlowRun(FR.WatchFlowRunRequest(flow_run_id=run.id))
        kinds = []
        async for message in call:
            kinds.append(message.WhichOneof("kind"))
            if message.HasField("caught_up"):
                break
        assert kinds == ["snapshot", "event", "caught_up"]
        await server.stop(2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "after_sequence=1" in (caught.value.details() or "")


async def test_a_client_cancelling_a_watch_leaves_no_waiter_and_no_error(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    server: RunningServer = await start_server("127.0.0.1:0", sqlite_url)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            run = await _new_run(channel)
            stub = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            call = stub.WatchFlowRun(FR.WatchFlowRunRequest(flow_run_id=run.id))
            async for message in call:
                if message.HasField("caught_up"):
                    break
            call.cancel()
            for _ in range(100):
                if not server._backend.hub._waiters:
                    break
                await asyncio.sleep(0.01)
            assert server._backend.hub._waiters == {}
    finally:
        await server.stop(1)
    errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors_logged == []

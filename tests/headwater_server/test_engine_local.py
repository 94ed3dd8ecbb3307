"""The in-process engine stream (`RunningServer.connect_engine`) against the gRPC one.

The same operations, sent the same way, must get the same answers whether they cross the
server's socket or not, on both databases; a shutdown, a cancel and refused metadata end the
stream with the status the gRPC method gives.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from headwater.v1 import engine_pb2, engine_pb2_grpc, flow_runs_pb2, states_pb2, task_runs_pb2
from headwater_server.server import RunningServer, start_server

FR = flow_runs_pb2
TR = task_runs_pb2
_Request = engine_pb2.ConnectRequest
_RUNNING = states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING)
_COMPLETED = states_pb2.State(
    type=states_pb2.STATE_TYPE_COMPLETED, result=states_pb2.StateResult(json="7")
)
_METADATA = (
    ("headwater-engine-id", str(uuid.UUID(int=7))),
    ("headwater-engine-host", "test-host"),
    ("headwater-engine-pid", "7"),
)

Exchange = Callable[[_Request], Awaitable[list[engine_pb2.ConnectResponse]]]


def _answers(message: engine_pb2.ConnectResponse) -> list[engine_pb2.ConnectResponse]:
    if message.WhichOneof("outcome") == "batch":
        return list(message.batch.responses)
    return [message]


def _exchange(call: Any) -> Exchange:
    """Send one message; read until every operation in it is answered."""

    async def exchange(request: _Request) -> list[engine_pb2.ConnectResponse]:
        expected = len(request.batch.requests) if request.HasField("batch") else 1
        await call.write(request)
        answers: list[engine_pb2.ConnectResponse] = []
        while len(answers) < expected:
            answers.extend(_answers(await call.read()))
        return sorted(answers, key=lambda answer: answer.sequence)

    return exchange


def _summary(answer: engine_pb2.ConnectResponse) -> tuple[Any, ...]:
    """What must match across the two streams: the outcome, never the fresh ids or times."""
    outcome = answer.WhichOneof("outcome")
    if outcome == "error":
        return (answer.sequence, "error", answer.error.code, answer.error.reason)
    result = getattr(answer, outcome)
    run = result.flow_run if "flow_run" in outcome else result.task_run
    decision = ""
    if outcome != "create_flow_run" and result.HasField("result"):
        decision = states_pb2.Decision.Name(result.result.decision)
    return (answer.sequence, outcome, states_pb2.StateType.Name(run.state.type), decision)


async def _script(exchange: Exchange) -> list[tuple[Any, ...]]:
    """A flow run with two tasks, as the SDK sends them (ends riding with the next start),
    plus operations that fail: every answer, summarised."""
    seen: list[engine_pb2.ConnectResponse] = []
    seen += await exchange(
        _Request(
            sequence=1,
            create_flow_run=FR.CreateFlowRunRequest(
                flow_name="local", request_id=str(uuid.uuid4())
            ),
        )
    )
    flow_run_id = seen[-1].create_flow_run.flow_run.id
    seen += await exchange(
        _Request(
            sequence=2,
            set_flow_run_state=FR.SetFlowRunStateRequest(
                flow_run_id=flow_run_id, state=_RUNNING, transition_id=str(uuid.uuid4())
            ),
        )
    )

    def start(sequence: int, task_run_id: str) -> _Request:
        return _Request(
            sequence=sequence,
            create_task_run=TR.CreateTaskRunRequest(
                flow_run_id=flow_run_id,
                task_key="t",
                dynamic_key=str(sequence),
                start=True,
                task_run_id=task_run_id,
                request_id=str(uuid.uuid4()),
            ),
        )

    def end(sequence: int, task_run_id: str) -> _Request:
        return _Request(
            sequence=sequence,
            set_task_run_state=TR.SetTaskRunStateRequest(
                task_run_id=task_run_id, state=_COMPLETED, transition_id=str(uuid.uuid4())
            ),
        )

    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    seen += await exchange(start(3, first))
    batch = _Request(sequence=0)
    batch.batch.requests.extend([end(4, first), start(5, second)])
    seen += await exchange(batch)
    bad = _Request(sequence=0)
    bad.batch.requests.extend(
        [
            end(6, second),
            _Request(sequence=7, get_flow_run=FR.GetFlowRunRequest(flow_run_id=str(uuid.uuid4()))),
            _Request(sequence=8, create_task_run=TR.CreateTaskRunRequest(flow_run_id="nope")),
            _Request(sequence=9),
        ]
    )
    seen += await exchange(bad)
    seen += await exchange(
        _Request(
            sequence=10,
            set_flow_run_state=FR.SetFlowRunStateRequest(
                flow_run_id=flow_run_id, state=_COMPLETED, transition_id=str(uuid.uuid4())
            ),
        )
    )
    return [_summary(answer) for answer in seen]


async def test_a_local_stream_answers_exactly_as_the_grpc_stream(database_url: str) -> None:
    server = await start_server("127.0.0.1:0", database_url)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            remote = engine_pb2_grpc.EngineServiceStub(channel).Connect(metadata=_METADATA)
            over_grpc = await _script(_exchange(remote))
            remote.cancel()
        local = server.connect_engine(_METADATA)
        in_process = await _script(_exchange(local))
        assert await local.initial_metadata() == grpc.aio.Metadata(("headwater-engine-batch", "1"))
        await local.done_writing()
        assert await local.read() is grpc.aio.EOF  # the client's end: the stream ends OK
    finally:
        await server.stop(1)
    assert in_process == over_grpc
    # The script did what it says (so that equal answers mean something).
    assert [answer[1] for answer in in_process].count("error") == 3
    assert in_process[-1][2] == "STATE_TYPE_COMPLETED"


async def _serving(sqlite_url: str) -> RunningServer:
    return await start_server(f"unix-abstract:headwater-test-{uuid.uuid4().hex}", sqlite_url)


async def test_stop_answers_what_a_local_stream_sent_then_fails_it_unavailable(
    sqlite_url: str,
) -> None:
    server = await _serving(sqlite_url)
    call = server.connect_engine(_METADATA)
    await call.write(
        _Request(sequence=1, create_flow_run=FR.CreateFlowRunRequest(flow_name="stopping"))
    )
    answer = await call.read()
    assert answer.sequence == 1 and answer.create_flow_run.flow_run.id
    await server.stop(2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError):  # and it stays failed
        await call.write(_Request(sequence=2))
    reopened = server.connect_engine(_METADATA)  # a reconnect to a stopped server
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reopened.read()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_local_stream_refuses_an_engine_id_that_is_not_a_uuid(sqlite_url: str) -> None:
    server = await _serving(sqlite_url)
    try:
        call = server.connect_engine((("headwater-engine-id", "not-a-uuid"),))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "headwater-engine-id" in (caught.value.details() or "")
    finally:
        await server.stop(1)


async def test_a_cancelled_local_stream_fails_its_reads_and_writes(sqlite_url: str) -> None:
    server = await _serving(sqlite_url)
    try:
        call = server.connect_engine(_METADATA)
        await call.write(
            _Request(sequence=1, create_flow_run=FR.CreateFlowRunRequest(flow_name="cancelled"))
        )
        assert (await call.read()).sequence == 1
        assert call.cancel() is True
        assert call.cancel() is False  # once
        for attempt in (call.read(), call.write(_Request(sequence=2))):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await attempt
            assert caught.value.code() == grpc.StatusCode.CANCELLED
    finally:
        await server.stop(1)

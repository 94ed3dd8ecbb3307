"""Server spans per engine-stream operation, and no spans from a provider nothing listens to.

Over real gRPC against the real server (SQLite), with the SDK's in-memory exporter: each
operation on ``EngineService.Connect`` that carries a trace context is a span of its own, named
like its unary twin, under that context, with its run ids and its SQL statements as children.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

import grpc
import grpc.aio
import pytest
from headwater.v1 import (
    engine_pb2,
    engine_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    states_pb2,
)
from headwater_server.server import start_server

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
FLOW_SPAN = "00f067aa0ba902b7"
TASK_SPAN = "b7ad6b7169203331"

CREATE = "headwater.v1.FlowRunService/CreateFlowRun"
SET_STATE = "headwater.v1.FlowRunService/SetFlowRunState"


def _context(span_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{span_id}-01"}


async def _exchange(
    address: str,
    requests: Sequence[engine_pb2.ConnectRequest],
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[engine_pb2.ConnectResponse]:
    """Send ``requests`` on one stream, each after the previous one's answer."""
    answers = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = engine_pb2_grpc.EngineServiceStub(channel).Connect(metadata=metadata)
        for request in requests:
            await call.write(request)
            answers.append(await call.read())
        await call.done_writing()
    return answers


def _create(sequence: int, **fields: object) -> engine_pb2.ConnectRequest:
    return engine_pb2.ConnectRequest(
        sequence=sequence,
        create_flow_run=flow_runs_pb2.CreateFlowRunRequest(flow_name="streamed"),
        **fields,  # type: ignore[arg-type]
    )


def _propose(sequence: int, run_id: str, **fields: object) -> engine_pb2.ConnectRequest:
    return engine_pb2.ConnectRequest(
        sequence=sequence,
        set_flow_run_state=flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id,
            state=states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING),
            transition_id=str(uuid.uuid4()),
        ),
        **fields,  # type: ignore[arg-type]
    )


def _named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_each_stream_operation_is_a_span_under_the_context_it_carries(
    sqlite_url: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = await start_server("127.0.0.1:0", sqlite_url, tracer_provider=provider)
    try:
        created, *_ = await _exchange(
            server.address, [_create(1, trace_context=_context(FLOW_SPAN))]
        )
        run_id = created.create_flow_run.flow_run.id
        missing = str(uuid.uuid4())
        running, untraced, refused = await _exchange(
            server.address,
            [
                _propose(1, run_id, trace_context=_context(TASK_SPAN)),
                engine_pb2.ConnectRequest(
                    sequence=2, get_flow_run=flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id)
                ),
                _propose(3, missing, trace_context=_context(TASK_SPAN)),
            ],
        )
    finally:
        await server.stop(1)
    assert running.set_flow_run_state.result.decision == states_pb2.DECISION_ACCEPT
    assert untraced.get_flow_run.flow_run.id == run_id
    assert refused.error.code == grpc.StatusCode.NOT_FOUND.value[0]

    spans = exporter.get_finished_spans()
    (create,) = _named(spans, CREATE)
    assert format(create.context.trace_id, "032x") == TRACE_ID
    assert create.parent is not None and format(create.parent.span_id, "016x") == FLOW_SPAN
    assert create.attributes is not None
    assert create.attributes["headwater.flow_run.id"] == run_id
    assert create.attributes["headwater.engine.operation"] == "create_flow_run"
    assert create.attributes["rpc.grpc.status_code"] == 0
    statements = [
        str((span.attributes or {}).get("db.statement", ""))
        for span in spans
        if span.parent is not None and span.parent.span_id == create.context.span_id
    ]
    assert any(sql.startswith("INSERT INTO flow_runs") for sql in statements), statements

    accepted, failed = sorted(
        _named(spans, SET_STATE),
        key=lambda span: (span.attributes or {})["headwater.flow_run.id"] != run_id,
    )
    assert accepted.parent is not None and format(accepted.parent.span_id, "016x") == TASK_SPAN
    assert (accepted.attributes or {})["headwater.flow_run.id"] == run_id
    assert accepted.status.is_ok
    assert (failed.attributes or {})["headwater.flow_run.id"] == missing
    assert (failed.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert not failed.status.is_ok
    # The read carried no trace context: the engine did not trace it, so no span.
    assert _named(spans, "headwater.v1.FlowRunService/GetFlowRun") == []


async def test_a_provider_without_a_span_processor_makes_no_spans_until_it_gets_one(
    sqlite_url: str,
) -> None:
    provider = TracerProvider()  # nothing receives its spans (yet)
    exporter = InMemorySpanExporter()
    server = await start_server("127.0.0.1:0", sqlite_url, tracer_provider=provider)
    metadata = (("traceparent", _context(FLOW_SPAN)["traceparent"]),)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            before = await runs.CreateFlowRun(
                flow_runs_pb2.CreateFlowRunRequest(flow_name="quiet"), metadata=metadata
            )
            await _exchange(server.address, [_create(1, trace_context=_context(FLOW_SPAN))])
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            after = await runs.CreateFlowRun(
                flow_runs_pb2.CreateFlowRunRequest(flow_name="quiet"), metadata=metadata
            )
            await _exchange(server.address, [_create(1, trace_context=_context(FLOW_SPAN))])
    finally:
        await server.stop(1)
    # Untraced, the run still stores its caller's context for whoever executes it...
    assert dict(before.flow_run.trace_context) == _context(FLOW_SPAN)
    # ...and traced, the server's span for the call that created it.
    spans = exporter.get_finished_spans()
    (unary,) = [
        s for s in _named(spans, CREATE) if "headwater.engine.operation" not in (s.attributes or {})
    ]
    assert (unary.attributes or {})["headwater.flow_run.id"] == after.flow_run.id
    assert after.flow_run.trace_context["traceparent"].split("-")[2] == format(
        unary.context.span_id, "016x"
    )
    # Exactly the two calls made after the processor came: the unary one and the stream's.
    assert len(_named(spans, CREATE)) == 2
    assert all(
        span.parent is not None and format(span.parent.span_id, "016x") == FLOW_SPAN
        for span in _named(spans, CREATE)
    )


async def test_an_engine_in_the_servers_own_process_gets_no_operation_spans(
    sqlite_url: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = await start_server("127.0.0.1:0", sqlite_url, tracer_provider=provider)

    def engine(pid: int) -> tuple[tuple[str, str], ...]:
        return (
            ("headwater-engine-id", str(uuid.uuid4())),
            ("headwater-engine-host", socket.gethostname()),
            ("headwater-engine-pid", str(pid)),
        )

    try:
        (here,) = await _exchange(
            server.address, [_create(1, trace_context=_context(FLOW_SPAN))], engine(os.getpid())
        )
        (elsewhere,) = await _exchange(
            server.address, [_create(1, trace_context=_context(FLOW_SPAN))], engine(1)
        )
    finally:
        await server.stop(1)
    # The embedded server's engine has its run spans for that (at a fraction of the cost).
    created = [
        (span.attributes or {})["headwater.flow_run.id"]
        for span in _named(exporter.get_finished_spans(), CREATE)
    ]
    assert created == [elsewhere.create_flow_run.flow_run.id]
    assert here.create_flow_run.flow_run.id

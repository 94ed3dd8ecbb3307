"""Server spans: one per RPC, continuing the caller's W3C trace, with the status code."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from headwater.v1 import flow_runs_pb2, flow_runs_pb2_grpc, flows_pb2, flows_pb2_grpc
from headwater_server.server import start_server
from headwater_server.telemetry import server_interceptor

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_no_interceptor_without_a_configured_provider() -> None:
    assert server_interceptor() is None  # the global provider is the API's no-op proxy


async def test_each_rpc_is_a_server_span_in_the_callers_trace(sqlite_url: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = await start_server("127.0.0.1:0", sqlite_url, tracer_provider=provider)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            flows = flows_pb2_grpc.FlowServiceStub(channel)
            await flows.CreateFlow(
                flows_pb2.CreateFlowRequest(name="traced"), metadata=(("traceparent", PARENT),)
            )
            runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await runs.GetFlowRun(flow_runs_pb2.GetFlowRunRequest(flow_run_id="bad"))
    finally:
        await server.stop(1)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    created = spans["headwater.v1.FlowService/CreateFlow"]
    assert format(created.context.trace_id, "032x") == TRACE_ID
    assert created.attributes["rpc.system"] == "grpc"
    assert created.attributes["rpc.grpc.status_code"] == 0
    failed = spans["headwater.v1.FlowRunService/GetFlowRun"]
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not failed.status.is_ok


async def test_a_run_stores_the_creating_span_and_its_statements_are_child_spans(
    sqlite_url: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = await start_server("127.0.0.1:0", sqlite_url, tracer_provider=provider)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            created = await runs.CreateFlowRun(
                flow_runs_pb2.CreateFlowRunRequest(flow_name="traced"),
                metadata=(("traceparent", PARENT),),
            )
            read = await runs.GetFlowRun(
                flow_runs_pb2.GetFlowRunRequest(flow_run_id=created.flow_run.id)
            )
    finally:
        await server.stop(1)
    spans = exporter.get_finished_spans()
    create = next(s for s in spans if s.name == "headwater.v1.FlowRunService/CreateFlowRun")
    assert create.attributes["headwater.flow_run.id"] == created.flow_run.id
    get = next(s for s in spans if s.name == "headwater.v1.FlowRunService/GetFlowRun")
    assert get.attributes["headwater.flow_run.id"] == created.flow_run.id
    # The run remembers the span that created it, so its executor's span hangs under it.
    stored = read.flow_run.trace_context["traceparent"]
    assert stored == f"00-{TRACE_ID}-{create.context.span_id:016x}-01"
    assert created.flow_run.trace_context["traceparent"] == stored
    # Creating a run takes the raw fast path: its statements are spans too.
    statements = [
        s.attributes["db.statement"]
        for s in spans
        if s.parent is not None and s.parent.span_id == create.context.span_id
    ]
    assert any(sql.startswith("INSERT INTO flow_runs") for sql in statements)
    # Statements outside any traced call (the background loops') make no spans.
    assert all(s.parent is not None for s in spans if "db.statement" in (s.attributes or {}))


async def test_a_server_that_does_not_trace_still_stores_the_callers_context(
    sqlite_url: str,
) -> None:
    server = await start_server("127.0.0.1:0", sqlite_url)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            from_metadata = await runs.CreateFlowRun(
                flow_runs_pb2.CreateFlowRunRequest(flow_name="traced"),
                metadata=(("traceparent", PARENT), ("tracestate", "vendor=1")),
            )
            explicit = await runs.CreateFlowRun(
                flow_runs_pb2.CreateFlowRunRequest(
                    flow_name="traced", trace_context={"traceparent": PARENT}
                )
            )
            untraced = await runs.CreateFlowRun(
                flow_runs_pb2.CreateFlowRunRequest(flow_name="traced")
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await runs.CreateFlowRun(
                    flow_runs_pb2.CreateFlowRunRequest(
                        flow_name="traced", trace_context={"baggage": "a=b"}
                    )
                )
    finally:
        await server.stop(1)
    assert dict(from_metadata.flow_run.trace_context) == {
        "traceparent": PARENT,
        "tracestate": "vendor=1",
    }
    assert dict(explicit.flow_run.trace_context) == {"traceparent": PARENT}
    assert dict(untraced.flow_run.trace_context) == {}
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "trace_context" in (refused.value.details() or "")

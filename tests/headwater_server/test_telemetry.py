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

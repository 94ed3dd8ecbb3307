"""An OTLP/gRPC endpoint that accepts spans (and metrics), counts the spans and drops it all.

A real exporter needs something to talk to: without a listener its export fails and retries,
which would measure the retries, not tracing. This sink answers at once, like a local collector,
and counts what it got, so the table can say how many spans each traced call really exported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class OtlpSink(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """The sink's servicer: `spans` is how many spans it has been sent so far."""

    def __init__(self) -> None:
        self.endpoint = ""
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        received = sum(
            len(scope.spans)
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
        with self._lock:
            self.spans += received
        return trace_service_pb2.ExportTraceServiceResponse()


class _DropMetrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """The same endpoint takes the server's metrics, as a collector would (the standard
    variable that turns on the span exporter turns on the metric exporter too)."""

    def Export(self, request: Any, context: Any) -> Any:
        return metrics_service_pb2.ExportMetricsServiceResponse()


@contextmanager
def otlp_sink() -> Iterator[OtlpSink]:
    """Yields the running sink; its ``endpoint`` is "http://127.0.0.1:<port>"."""
    sink = OtlpSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_DropMetrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sink.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield sink
    finally:
        server.stop(0)

"""An OTLP/gRPC endpoint that accepts spans and drops them, for tracing_overhead's exporter mode.

A real exporter needs something to talk to: without a listener its export fails and retries,
which would measure the retries, not tracing. This sink answers at once, like a local collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class _Drop(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def Export(self, request: Any, context: Any) -> Any:
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def otlp_sink() -> Iterator[str]:
    """Yields the sink's endpoint ("http://127.0.0.1:<port>") while it runs."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Drop(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)

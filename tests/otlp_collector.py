"""A tiny OTLP/gRPC collector for tests: it keeps every span and metric it is sent.

The processes under test export with their real OTLP exporters, configured only by the standard
``OTEL_*`` variables (`Collector.environment`), so the test sees what an operator's collector
would, with no mock in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class Span:
    """One received span, flattened: hex ids, plain attributes, its process's service name."""

    name: str
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: tuple[str, ...]
    status_code: int
    kind: int


@dataclass
class Collector:
    """Receives OTLP traces and metrics on 127.0.0.1:<port>."""

    port: int = 0
    spans: list[Span] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self, service_name: str) -> dict[str, str]:
        """The variables that make a process export here, quickly, as ``service_name``."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        }

    def received(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = ""
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    service = attribute.value.string_value
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Span(
                            name=span.name,
                            service=service,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=tuple(event.name for event in span.events),
                            status_code=span.status.code,
                            kind=span.kind,
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def wait_for(self, condition: Callable[[list[Span]], bool], what: str) -> list[Span]:
        """Wait until the spans received satisfy ``condition`` (generous: exports are batched)."""
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if condition(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"no {what} after 60 s; received: {[s.name for s in spans]}")

    def wait_for_metrics(self, names: set[str]) -> None:
        """Wait until metrics with every one of ``names`` were received."""
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            with self._lock:
                if names <= self.metric_names:
                    return
            time.sleep(0.05)
        raise AssertionError(f"missing metrics {names - self.metric_names} after 60 s")


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def Export(self, request: Any, context: Any) -> Any:
        self._collector.received(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def Export(self, request: Any, context: Any) -> Any:
        names = {
            metric.name
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }
        with self._collector._lock:
            self._collector.metric_names |= names
        return metrics_service_pb2.ExportMetricsServiceResponse()


def running_collector() -> Iterator[Collector]:
    """Start a collector; stop it when the generator is closed (a fixture's body)."""
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(collector), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(collector), server)
    collector.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield collector
    finally:
        server.stop(0)


def children(spans: list[Span], parent: Span) -> list[Span]:
    """The spans whose parent is ``parent``."""
    return [span for span in spans if span.parent_id == parent.span_id]


def one(spans: list[Span], **where: Any) -> Span:
    """The one span matching ``where`` (``name=``, ``service=``, or an attribute by key)."""
    found = [span for span in spans if _matches(span, where)]
    assert len(found) == 1, f"expected one span with {where}, got {len(found)}: {found}"
    return found[0]


def _matches(span: Span, where: dict[str, Any]) -> bool:
    for key, value in where.items():
        if key in ("name", "service"):
            if getattr(span, key) != value:
                return False
        elif span.attributes.get(key) != value:
            return False
    return True

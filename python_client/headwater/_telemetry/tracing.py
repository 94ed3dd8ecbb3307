"""Whether this process traces, decided cheaply, and the W3C carrier of the current context.

`tracer` is the check every engine hook makes first. It never imports OpenTelemetry: a process
can only have set a global tracer provider after importing ``opentelemetry.trace``, so while
that module is absent the answer is None at the cost of a dictionary lookup. Once it is
imported, the provider is compared by identity with the last one seen, so the tracer is made
once per provider, and an application (or a test) that swaps providers is followed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = [
    "TRACER_NAME",
    "configure_from_environment",
    "current_carrier",
    "current_metadata",
    "tracer",
]

#: The instrumentation scope of the SDK's spans.
TRACER_NAME = "headwater"

_environment_checked = False
_seen_provider: Any = None
_tracer: Any = None


def tracer() -> Any | None:
    """The SDK's tracer, or None when no real tracer provider is configured."""
    global _seen_provider, _tracer
    if not _environment_checked:
        configure_from_environment()
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if provider is not _seen_provider:
        _seen_provider = provider
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            _tracer = None
        else:
            _tracer = provider.get_tracer(TRACER_NAME)
    return _tracer


def configure_from_environment() -> bool:
    """Install an SDK tracer provider when the standard ``OTEL_*`` variables ask for traces.

    Runs once per process (the transport calls it before it starts the embedded server, so
    both trace with the same provider). An application that set its own provider keeps it.

    Returns:
        True when this call installed a provider.
    """
    global _environment_checked
    if _environment_checked:
        return False
    _environment_checked = True
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if disabled or exporter_name == "none" or not (exporter_name or endpoint):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    exporter: Any
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            return False
        exporter = OTLPSpanExporter()
    name = os.environ.get("OTEL_SERVICE_NAME") or os.path.basename(sys.argv[0] or "python")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def current_carrier() -> dict[str, str] | None:
    """The W3C ``traceparent``/``tracestate`` of the current span, or None when not tracing.

    What the transport sends so the service (and whoever executes a run created here)
    continues this process's trace.
    """
    if tracer() is None:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier or None


def current_metadata() -> tuple[tuple[str, str], ...] | None:
    """`current_carrier` as gRPC metadata for a unary call, or None when not tracing."""
    carrier = current_carrier()
    return tuple(carrier.items()) if carrier else None

"""Whether this process traces, decided cheaply, and the W3C carrier of the current context.

`tracer` is the check every engine hook makes first. It never imports OpenTelemetry: a process
can only have set a global tracer provider after importing ``opentelemetry.trace``, so while
that module is absent the answer is None at the cost of a dictionary lookup. Once it is
imported, the provider is compared by identity with the last one seen, so the tracer is made
once per provider, and an application (or a test) that swaps providers is followed.

A provider that has nowhere to send spans (the SDK's ``TracerProvider`` before any span
processor is added) counts as not tracing: its spans would be built, then dropped, at ~50 us
per run. Whether it has one is asked on every call (`span_processors`), so a processor added
later is followed too. The caller's own trace context still travels (`current_carrier`), as
OpenTelemetry's API propagates context with no SDK at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "TRACER_NAME",
    "configure_from_environment",
    "current_carrier",
    "current_metadata",
    "serving_in_process",
    "span_processors",
    "stamp_trace_context",
    "trace_stamper",
    "tracer",
]

#: The instrumentation scope of the SDK's spans.
TRACER_NAME = "headwater"

_environment_checked = False
_seen_provider: Any = None
_tracer: Any = None
#: The seen provider's span processors (`span_processors`), None when it has no such list.
_processors: Any = None
#: Whether OTEL_PYTHON_TRACER_PROVIDER names a provider for the API to load when first asked.
_provider_variable = False
#: Stands for an API that keeps its global provider elsewhere (`tracer` then asks its getter).
_UNKNOWN: Any = object()


def tracer() -> Any | None:
    """The SDK's tracer, or None when no tracer provider that exports spans is configured."""
    global _seen_provider, _tracer, _processors
    if not _environment_checked:
        configure_from_environment()
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    # The API's global, read as its getter reads it: the getter costs ~10 us a run in a busy
    # process when no provider is set (its os.environ check raises and catches a KeyError).
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _provider_variable:
        return None  # none set, and none named by OTEL_PYTHON_TRACER_PROVIDER: not tracing
    if provider is None or provider is _UNKNOWN:
        provider = trace.get_tracer_provider()
    if provider is not _seen_provider:
        _seen_provider = provider
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            _tracer, _processors = None, None
        else:
            _tracer, _processors = provider.get_tracer(TRACER_NAME), span_processors(provider)
    if _processors is not None and not _processors._span_processors:
        return None  # spans would be made and dropped: not tracing until a processor is added
    return _tracer


def span_processors(provider: Any) -> Any | None:
    """The object holding ``provider``'s span processors, or None when it keeps no such list.

    OpenTelemetry offers no public way to ask a provider whether anything receives its spans.
    The SDK's ``TracerProvider`` keeps them in ``_active_span_processor._span_processors`` (a
    tuple that `add_span_processor` replaces), stable since the SDK's 1.0; a provider shaped
    otherwise (another SDK, a vendor's) is taken to export.
    """
    holder = getattr(provider, "_active_span_processor", None)
    return holder if isinstance(getattr(holder, "_span_processors", None), tuple) else None


def configure_from_environment() -> bool:
    """Install an SDK tracer provider when the standard ``OTEL_*`` variables ask for traces.

    Runs once per process (the transport calls it before it starts the embedded server, so
    both trace with the same provider). An application that set its own provider keeps it.

    Returns:
        True when this call installed a provider.
    """
    global _environment_checked, _provider_variable
    if _environment_checked:
        return False
    _environment_checked = True
    _provider_variable = bool(os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"))
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


def current_carrier() -> Mapping[str, str] | None:
    """The W3C ``traceparent``/``tracestate`` of the current span, or None when there is none.

    What the transport sends so the service (and whoever executes a run created here)
    continues this process's trace. The current span may be the application's own even when
    this process exports nothing (a context extracted from an incoming request): it travels
    all the same, as OpenTelemetry's API propagates context without an SDK.

    The engine asks several times per run with the same context current (each state proposal
    carries it), so the answer is kept for the last context and propagator seen: a context is
    immutable, and while it stays current the carrier cannot change. The mapping returned is
    shared: read it, never change it.
    """
    if not _environment_checked:
        configure_from_environment()
    if "opentelemetry.trace" not in sys.modules:
        return None
    propagate = _propagate
    if propagate.get_current is None:
        propagate.load()
    current = propagate.get_current()
    textmap = propagate.get_global_textmap()
    last = propagate.last
    if last[0] is current and last[1] is textmap:
        return last[2]
    carrier: dict[str, str] | None = None
    if propagate.get_current_span(current).get_span_context().is_valid:
        carrier = {}
        textmap.inject(carrier, context=current)
    found = carrier or None
    propagate.last = (current, textmap, found)
    return found


def stamp_trace_context(request: Any) -> None:
    """Put the current trace context on an engine-stream request (its ``trace_context`` map).

    The stream is one long call, so its metadata cannot carry each operation's context; the
    server makes each operation's span a child of the one it carries. A stream to a server in
    this process takes `trace_stamper`'s no-op instead.
    """
    carrier = current_carrier()
    if carrier is not None:
        stamped = request.trace_context
        for key, value in carrier.items():  # not .update(): the map's ABC path costs ~5 us
            stamped[key] = value


#: The addresses of servers running in this process (`serving_in_process`).
_in_process_servers: set[str] = set()


def serving_in_process(address: str) -> None:
    """Note that a server in this process (the embedded one) listens on ``address``."""
    _in_process_servers.add(address)


def trace_stamper(address: str) -> Callable[[Any], None]:
    """What an engine stream to ``address`` stamps its requests with.

    `stamp_trace_context`, except for a server in this process: it makes no span per
    operation for an engine in its own process (``headwater_server.telemetry``: the engine's
    run spans stand for them), so the context would be built for every state proposal and
    dropped. Runs created there still store their trace context (the create request's own).
    """
    return _no_stamp if address in _in_process_servers else stamp_trace_context


def _no_stamp(request: Any) -> None:
    """Stamp nothing (see `trace_stamper`)."""


class _Propagate:
    """OpenTelemetry's context and propagation functions, imported on first use (not per
    call), and the last carrier made (`current_carrier`)."""

    get_current: Any = None
    get_current_span: Any = None
    get_global_textmap: Any = None
    #: (context, propagator, carrier) of the last `current_carrier` that built one.
    last: tuple[Any, Any, Mapping[str, str] | None] = (None, None, None)

    def load(self) -> None:
        from opentelemetry.context import get_current
        from opentelemetry.propagate import get_global_textmap
        from opentelemetry.trace import get_current_span

        self.get_current_span = get_current_span
        self.get_global_textmap = get_global_textmap
        self.get_current = get_current


_propagate = _Propagate()


def current_metadata() -> tuple[tuple[str, str], ...] | None:
    """`current_carrier` as gRPC metadata for a unary call, or None when not tracing."""
    carrier = current_carrier()
    return tuple(carrier.items()) if carrier else None

"""Optional OpenTelemetry tracing: one server span per RPC, continuing the caller's trace.

Tracing costs nothing unless it is wanted: the interceptor is only installed when the
``opentelemetry`` API is importable AND a real tracer provider is configured, either by the
host application (embedded mode) or, for ``headwater server start``, from the standard
``OTEL_*`` variables (:func:`configure_from_environment`). A provider with no span processor
(nothing would receive the spans) makes no spans: each RPC asks, for the price of an attribute
read, so the SDK's bare ``TracerProvider`` costs nothing per call. The engine stream is one RPC
for the life of the stream; its operations get spans of their own from
:mod:`headwater_server.stream_spans`, when the engine sends their trace context.

A caller's trace continues through the W3C ``traceparent`` (and ``tracestate``) gRPC metadata.
Each span names the runs its call concerns (``headwater.flow_run.id`` and the like, from the
request and the response). A flow run stores the trace context it was created in
(:func:`creation_context`), so the process that executes it later continues that trace, even
when this server does not trace itself.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import grpc
import grpc.aio

#: The instrumentation scope of the server spans.
TRACER_NAME = "headwater_server"

#: The W3C metadata keys of a caller's trace context.
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})

#: The trace context a unary call arrived with (None when the caller did not trace).
_caller_trace: ContextVar[dict[str, str] | None] = ContextVar("caller_trace", default=None)

#: Request fields that name a run (or what runs it), copied onto the call's span.
_REQUEST_ID_FIELDS = ("flow_run_id", "task_run_id", "deployment_id", "flow_id", "worker_name")
#: Response fields holding the resource a call created or read, whose id goes onto the span.
RESPONSE_RESOURCES = ("flow_run", "task_run", "deployment")


#: The tracer (and its provider's span processors) of the streaming call in progress.
_stream_tracing: ContextVar[tuple[Any, Any] | None] = ContextVar("stream_tracing", default=None)


def stream_tracer() -> Any | None:
    """The tracer for spans inside the current streaming call, or None when it is untraced.

    Set by the tracing interceptor for the call (so a server that does not trace, and one whose
    provider has lost its processors, answer None), read by :mod:`.stream_spans`.
    """
    tracing = _stream_tracing.get()
    if tracing is None:
        return None
    tracer, processors = tracing
    if processors is not None and not processors._span_processors:
        return None
    return tracer


def remember_caller(context: grpc.aio.ServicerContext) -> None:
    """Keep the trace context a unary call's metadata carries, for :func:`creation_context`.

    Called by every unary handler, whether or not this server traces: a caller that traces
    must find its trace stored with the runs it creates either way.
    """
    metadata = context.invocation_metadata()
    if not metadata:
        return
    carrier = {key: value for key, value in metadata if key in _TRACE_KEYS}
    if carrier:
        _caller_trace.set(carrier)


def creation_context(explicit: Mapping[str, str]) -> Mapping[str, str] | None:
    """The trace context to store with a run created now.

    Args:
        explicit: What the request carries itself (the engine stream's creations): wins.

    Returns:
        The current server span's context when this server traces (the run's span then hangs
        under the RPC that created it), else the caller's own, else None.
    """
    if explicit:
        return explicit
    if "opentelemetry.trace" in sys.modules:
        if _otel.inject is None:
            _otel.load()
        if _otel.get_current_span().get_span_context().is_valid:
            carrier: dict[str, str] = {}
            _otel.inject(carrier)
            if carrier:
                return carrier
    return _caller_trace.get()


class _OpenTelemetry:
    """OpenTelemetry's functions `creation_context` uses, imported once it is loaded (an
    import statement in a function costs a lookup on every run created)."""

    get_current_span: Any = None
    inject: Any = None

    def load(self) -> None:
        from opentelemetry.propagate import inject
        from opentelemetry.trace import get_current_span

        self.get_current_span, self.inject = get_current_span, inject


_otel = _OpenTelemetry()


def configure_from_environment() -> bool:
    """Install an SDK tracer provider when ``OTEL_*`` variables ask for traces.

    Returns:
        True when tracing was configured here.
    """
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter_name == "none" or not (exporter_name or endpoint):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
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
    service_name = os.environ.get("OTEL_SERVICE_NAME", "headwater-server")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def active_provider(tracer_provider: Any = None) -> Any | None:
    """The tracer provider to trace with, or None when tracing is not installed or configured.

    Args:
        tracer_provider: The provider asked for; None looks for a configured global one.
    """
    if tracer_provider is None and not _global_provider_possible():
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = tracer_provider or trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


def server_interceptor(tracer_provider: Any = None) -> grpc.aio.ServerInterceptor | None:
    """Return the tracing interceptor, or None when tracing is not installed or not configured.

    Args:
        tracer_provider: The provider to trace with; None uses the global one.
    """
    provider = active_provider(tracer_provider)
    if provider is None:
        return None
    return TracingInterceptor.for_provider(provider)


def span_processors(provider: Any) -> Any | None:
    """The object holding ``provider``'s span processors, or None when it keeps no such list.

    OpenTelemetry offers no public way to ask a provider whether anything receives its spans.
    The SDK's ``TracerProvider`` keeps them in ``_active_span_processor._span_processors`` (a
    tuple that ``add_span_processor`` replaces), stable since the SDK's 1.0; a provider shaped
    otherwise is taken to export. (The SDK's ``headwater._telemetry.tracing`` asks the same
    way; the service imports nothing from the SDK.)
    """
    holder = getattr(provider, "_active_span_processor", None)
    return holder if isinstance(getattr(holder, "_span_processors", None), tuple) else None


def _global_provider_possible() -> bool:
    """Whether a global tracer provider may be configured, decided without importing OTel.

    Importing ``opentelemetry.trace`` costs 10-20 ms, a slice of every embedded cold start, and
    a process can only have set a global provider after importing it; the one other way is the
    ``OTEL_PYTHON_TRACER_PROVIDER`` variable, which the API reads when first asked.
    """
    return "opentelemetry.trace" in sys.modules or bool(
        os.environ.get("OTEL_PYTHON_TRACER_PROVIDER")
    )


# grpc ships no type stubs, so mypy sees its base class as Any.
class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every RPC handler in a SERVER span named "<package.Service>/<Method>"."""

    def __init__(self, tracer: Any, processors: Any = None) -> None:
        """
        Args:
            tracer: The tracer of the server's spans.
            processors: Its provider's span processors (`span_processors`): while it holds
                none, calls go untraced. None traces every call.
        """
        self._tracer = tracer
        self._processors = processors

    @classmethod
    def for_provider(cls, provider: Any) -> TracingInterceptor:
        """The interceptor tracing with ``provider`` whenever it has a span processor."""
        return cls(provider.get_tracer(TRACER_NAME), span_processors(provider))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or (
            self._processors is not None and not self._processors._span_processors
        ):
            return handler  # nothing would receive the spans: not even the attributes are built
        method = handler_call_details.method.lstrip("/")
        metadata = handler_call_details.invocation_metadata or ()
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        return rewrap(
            handler,
            lambda behavior: self._unary(behavior, method, carrier),
            lambda behavior: self._streaming(behavior, method, carrier),
        )

    def _start_span(self, method: str, carrier: dict[str, str]) -> Any:
        from opentelemetry import trace
        from opentelemetry.propagate import extract

        service, _, name = method.partition("/")
        return self._tracer.start_span(
            method,
            context=extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )

    def _unary(
        self, behavior: Callable[..., Awaitable[Any]], method: str, carrier: dict[str, str]
    ) -> Callable[..., Awaitable[Any]]:
        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            from opentelemetry import trace

            span = self._start_span(method, carrier)
            name_runs(span, request)
            try:
                with trace.use_span(span, end_on_exit=False):
                    response = await behavior(request, context)
                name_runs(span, response, RESPONSE_RESOURCES)
                return response
            finally:
                _finish(span, context)

        return traced

    def _streaming(
        self, behavior: Callable[..., AsyncIterator[Any]], method: str, carrier: dict[str, str]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def traced(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # No use_span here: a context attached in an async generator may be detached in
            # another context when the client cancels; the span is passed explicitly instead.
            span = self._start_span(method, carrier)
            name_runs(span, request)
            if not _engine_in_this_process(carrier):
                # The engine stream's operations get spans of their own (`stream_tracer`).
                _stream_tracing.set((self._tracer, self._processors))
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                _finish(span, context)

        return traced


def _engine_in_this_process(metadata: Mapping[str, str]) -> bool:
    """Whether a stream's engine is this very process (the SDK's embedded server).

    Its operations then get no spans of their own: the engine's flow run and task run spans
    already stand for them in the same process, and a span per operation with its SQL
    statements' spans would cost a traced flow call several times what its own span costs
    (``python -m bench --only tracing_overhead``). An engine names its host and pid in the
    stream's metadata.
    """
    return metadata.get("headwater-engine-pid") == str(os.getpid()) and (
        metadata.get("headwater-engine-host") == socket.gethostname()
    )


def name_runs(span: Any, message: Any, resources: tuple[str, ...] = ()) -> None:
    """Put the ids a request names (or a response's resource ids) on the call's span."""
    if message is None or not span.is_recording():
        return
    for name in _REQUEST_ID_FIELDS:
        value = getattr(message, name, "")
        if value and isinstance(value, str):
            span.set_attribute(f"headwater.{name.replace('_id', '.id')}", value)
    for name in resources:
        resource = getattr(message, name, None)
        resource_id = getattr(resource, "id", "")
        if resource_id:
            span.set_attribute(f"headwater.{name}.id", resource_id)


def _finish(span: Any, context: grpc.aio.ServicerContext) -> None:
    from opentelemetry.trace import Status, StatusCode

    name, number = status_of(context)
    span.set_attribute("rpc.grpc.status_code", number)
    if number != 0:
        details = ""
        try:
            details = context.details() or ""
        except Exception:
            details = ""
        span.set_status(Status(StatusCode.ERROR, f"{name}: {details}"[:500]))
    span.end()


def status_of(context: grpc.aio.ServicerContext) -> tuple[str, int]:
    """The (name, number) of the status code a finished call ended with ("OK", 0 if unset)."""
    code = None
    try:
        code = context.code()
    except Exception:  # not every grpc version exposes the code of an aborted call
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name, code.value[0]
    if isinstance(code, int):
        return str(code), code
    return "OK", 0


Behavior = Callable[..., Any]


def rewrap(
    handler: grpc.RpcMethodHandler,
    unary: Callable[[Behavior], Behavior],
    streaming: Callable[[Behavior], Behavior],
) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour wrapped: ``unary`` for unary-unary calls, ``streaming``
    for server- and bidi-streaming ones (headwater.v1 has no client-streaming RPC)."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            streaming(handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(
            streaming(handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler

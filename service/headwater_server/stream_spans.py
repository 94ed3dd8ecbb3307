"""One server span per operation on the engine stream, when the server traces.

``EngineService.Connect`` is one RPC for the life of an SDK process, so its own span says
nothing about the runs it carries. Each operation (a flow run's create, a state proposal, a
task run's create...) gets a span of its own instead, named like the unary RPC it stands for
("headwater.v1.FlowRunService/SetFlowRunState"), with the run ids of the request and the
answer, and the operation's SQL statements as its children.

Its parent is the trace context the operation carries (``ConnectRequest.trace_context``, or a
create's own ``trace_context``): the engine's span for the flow run or task run it acts for.
An operation that carries none gets no span (the engine does not trace it, and a trace per log
batch would only be noise), and neither does any operation of a stream the server does not
trace (`headwater_server.telemetry.stream_tracer`), so the hook costs one context-variable
read per operation when tracing is off. Nor does the stream of an engine in the server's own
process (the SDK's embedded server): its run spans already stand for its operations there, at a
fraction of the cost (see `headwater_server.telemetry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headwater_server.application.backend import Backend, Operation
from headwater_server.telemetry import RESPONSE_RESOURCES, name_runs, stream_tracer

__all__ = ["OPERATION_METHODS", "traced_operation"]

#: Engine operation -> the unary RPC it stands for ("package.Service/Method").
OPERATION_METHODS: dict[str, str] = {
    "create_flow_run": "headwater.v1.FlowRunService/CreateFlowRun",
    "set_flow_run_state": "headwater.v1.FlowRunService/SetFlowRunState",
    "get_flow_run": "headwater.v1.FlowRunService/GetFlowRun",
    "create_task_run": "headwater.v1.TaskRunService/CreateTaskRun",
    "set_task_run_state": "headwater.v1.TaskRunService/SetTaskRunState",
    "create_logs": "headwater.v1.LogService/CreateLogs",
}


class _OpenTelemetry:
    """OpenTelemetry's functions, imported on the first traced operation (a server that does
    not trace never imports them)."""

    extract: Any = None
    use_span: Any = None
    SERVER: Any = None
    Status: Any = None
    ERROR: Any = None

    def load(self) -> None:
        from opentelemetry import trace
        from opentelemetry.propagate import extract

        self.extract, self.use_span = extract, trace.use_span
        self.SERVER = trace.SpanKind.SERVER
        self.Status, self.ERROR = trace.Status, trace.StatusCode.ERROR


_otel = _OpenTelemetry()


def traced_operation(
    handler: Operation[Any, Any], kind: str, request: Any, operation: Any
) -> Operation[Any, Any]:
    """``handler``, run inside a span of its own when the stream is traced and the operation
    carries a trace context; else ``handler`` itself.

    Args:
        handler: What runs the operation (``handler(backend, operation)``).
        kind: The operation's name (the ``ConnectRequest`` oneof field).
        request: The ``ConnectRequest`` that carries it.
        operation: The operation's own message.
    """
    tracer = stream_tracer()
    if tracer is None:
        return handler
    carrier: Mapping[str, str] = (
        request.trace_context or getattr(operation, "trace_context", None) or {}
    )
    if not carrier:
        return handler
    if _otel.extract is None:
        _otel.load()
    method = OPERATION_METHODS.get(kind, f"headwater.v1.EngineService/{kind}")

    async def run(backend: Backend, message: Any) -> Any:
        service, _, name = method.partition("/")
        span = tracer.start_span(
            method,
            context=_otel.extract(carrier),
            kind=_otel.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": name,
                "headwater.engine.operation": kind,
            },
        )
        name_runs(span, message)
        try:
            with _otel.use_span(span, end_on_exit=False, record_exception=False):
                result = await handler(backend, message)
        except BaseException as exc:
            code = getattr(exc, "code", None)
            if code is not None and hasattr(code, "value"):
                span.set_attribute("rpc.grpc.status_code", code.value[0])
            span.record_exception(exc)
            span.set_status(_otel.Status(_otel.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
            span.end()
            raise
        name_runs(span, result, RESPONSE_RESOURCES)
        span.set_attribute("rpc.grpc.status_code", 0)
        span.end()
        return result

    return run

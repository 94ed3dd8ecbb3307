"""OpenTelemetry for the SDK: the engine's spans per flow run and task run, and trace context.

Nothing here imports OpenTelemetry until a tracer provider is in use, and every hook the engine
calls starts with one cheap check (`tracing.tracer`), so a process that does not trace pays a
dictionary lookup per run and no import (see ``bench/workloads/flow_overhead.py``'s tracing
variants). A process traces when its application set a global tracer provider, or when the
standard ``OTEL_TRACES_EXPORTER`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` variables ask for one
(`tracing.configure_from_environment`).

- `tracing`: the cheap check, the provider from the ``OTEL_*`` variables, and the W3C carrier
  of the current context (what the transport sends as ``traceparent``).
- `runs`: one span per flow run and task run, parented to the caller's context or to the
  context stored with the run when it was created elsewhere.
"""

from headwater._telemetry.runs import (
    RunSpan,
    start_flow_run_span,
    start_run_span,
    start_task_run_span,
)
from headwater._telemetry.tracing import (
    configure_from_environment,
    current_carrier,
    current_metadata,
    serving_in_process,
    stamp_trace_context,
    trace_stamper,
    tracer,
)

__all__ = [
    "RunSpan",
    "configure_from_environment",
    "current_carrier",
    "current_metadata",
    "serving_in_process",
    "stamp_trace_context",
    "start_flow_run_span",
    "start_run_span",
    "start_task_run_span",
    "trace_stamper",
    "tracer",
]

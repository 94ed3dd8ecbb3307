"""When the SDK traces: only with a provider that sends its spans somewhere.

Each case runs in a fresh interpreter, since OpenTelemetry's global tracer provider can be set
once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()  # no span processor: nothing would receive a span
    trace.set_tracer_provider(provider)

    from headwater._telemetry import current_carrier, start_flow_run_span, tracer

    print("tracer", tracer())
    print("span", start_flow_run_span("etl", "run-id", "run-name", None))
    print("carrier", current_carrier())
    # The application's own context (say, extracted from an incoming request) still travels.
    remote = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote)))
    print("propagated", current_carrier())
    context.detach(token)

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = start_flow_run_span("etl", "run-id", "run-name", None)
    span.end(None, None, None)
    print("exported", [s.name for s in exporter.get_finished_spans()])
    """
)


def test_a_provider_without_a_span_processor_makes_no_spans_until_it_gets_one() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["tracer"] == "None"
    assert lines["span"] == "None"
    assert lines["carrier"] == "None"
    assert lines["propagated"] == (
        "{'traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}"
    )
    assert lines["exported"] == "['flow etl']"

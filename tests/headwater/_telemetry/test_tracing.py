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


CARRIER_SCRIPT = textwrap.dedent(
    """
    from opentelemetry import context, propagate, trace
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("test")

    from headwater._telemetry import current_carrier

    def span_id():
        carrier = current_carrier()
        return carrier and carrier["traceparent"].split("-")[2]

    print("none", span_id())
    with tracer.start_as_current_span("outer") as outer:
        print("outer", span_id() == format(outer.get_span_context().span_id, "016x"))
        with tracer.start_as_current_span("inner") as inner:
            print("inner", span_id() == format(inner.get_span_context().span_id, "016x"))
        print("outer again", span_id() == format(outer.get_span_context().span_id, "016x"))

        class Tagged(TraceContextTextMapPropagator):
            def inject(self, carrier, context=None, setter=None):
                carrier["x-tag"] = "tagged"

        propagate.set_global_textmap(
            CompositePropagator([TraceContextTextMapPropagator(), Tagged()])
        )
        print("new propagator", ",".join(sorted(current_carrier())))
    print("after", span_id())
    """
)


def test_the_carrier_follows_the_current_span_and_the_propagator() -> None:
    # current_carrier keeps its last answer per context: a span entered or left, or another
    # propagator installed, must still give the carrier of that moment.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", CARRIER_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert lines == {
        "none": "None",
        "outer": "True",
        "inner": "True",
        "outer again": "True",
        "new propagator": "traceparent,x-tag",
        "after": "None",
    }


STAMP_SCRIPT = textwrap.dedent(
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)

    from headwater._telemetry import serving_in_process, trace_stamper
    from headwater.v1 import engine_pb2

    serving_in_process("unix-abstract:here")
    with trace.get_tracer("test").start_as_current_span("run"):
        for address in ("unix-abstract:here", "127.0.0.1:4200"):
            request = engine_pb2.ConnectRequest()
            trace_stamper(address)(request)
            print(address, sorted(request.trace_context))
    """
)


def test_only_streams_to_another_process_carry_each_operations_trace_context() -> None:
    # A server in this process (the embedded one) makes no per-operation spans for its own
    # engine, so building the context for every state proposal sent to it would be waste.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", STAMP_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "unix-abstract:here []",
        "127.0.0.1:4200 ['traceparent']",
    ]


LATE_PROVIDER_SCRIPT = textwrap.dedent(
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from headwater._telemetry import tracer

    print("none set", tracer())
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    print("set later", tracer() is not None)
    """
)


def test_a_provider_set_after_the_first_runs_is_followed() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", LATE_PROVIDER_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["none set None", "set later True"]

"""One trace from a Python caller through the service into flow runs and task runs.

Real processes only: a `headwater server start` subprocess, a caller script with its own
OpenTelemetry SDK set up as an application would, and a served flow (``flow.serve``) that picks
up the run the caller created through a deployment and executes it in its own subprocess. Each
exports with the real OTLP exporter, configured by the standard ``OTEL_*`` variables, to a small
OTLP collector in this test (`otlp_collector`), and the test checks the tree it received.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_collector import Collector, Span, children, one, running_collector
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

CALLER = textwrap.dedent(
    """
    import sys

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "caller"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    from headwater import flow, task
    from headwater.deployments import run_deployment

    attempts = []


    @task(retries=1)
    def double(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("the first attempt fails")
        return 2 * x


    @task
    def add(a: int, b: int) -> int:
        return a + b


    @flow
    def pipeline(x: int) -> int:
        first = double(x)
        second = double.submit(x)
        return add(first, second.result())


    with trace.get_tracer("caller").start_as_current_span("caller"):
        print("pipeline", pipeline(3), flush=True)
        run = run_deployment(sys.argv[1], timeout=120)
        print("deployment-run", run.id, run.state.type.name, flush=True)
    provider.shutdown()
    """
)

SERVED = textwrap.dedent(
    """
    import sys

    from headwater import flow, task


    @task
    def shout(text: str) -> str:
        return text.upper()


    @flow
    def greet(name: str = "world") -> str:
        return shout(f"hello {name}")


    if __name__ == "__main__":
        greet.serve(sys.argv[1], limit=1)
    """
)


@pytest.fixture
def collector() -> Iterator[Collector]:
    yield from running_collector()


@pytest.fixture
def traced_server(tmp_path: Path, collector: Collector) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", env=collector.environment("headwater-server"))
    server.start()
    yield server
    server.stop()


def _process(
    tmp_path: Path, server: ServerProcess, collector: Collector, service: str, *args: str
) -> subprocess.Popen[str]:
    env = {**os.environ, **collector.environment(service), "HEADWATER_API_URL": server.address}
    env["HEADWATER_HOME"] = str(tmp_path / service)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_registered(server: ServerProcess, name: str, served: subprocess.Popen[str]) -> None:
    from headwater.client import HeadwaterClient
    from headwater.exceptions import ObjectNotFound

    deadline = time.monotonic() + 60.0
    with HeadwaterClient(server.address) as client:
        while time.monotonic() < deadline:
            if served.poll() is not None:
                raise AssertionError(f"the served process exited: {served.communicate()[0]}")
            try:
                client.get_deployment(f"greet/{name}")
                return
            except ObjectNotFound:
                time.sleep(0.1)
    raise AssertionError("the served flow's deployment was never registered")


def test_one_trace_from_the_caller_through_the_service_into_flows_and_tasks(
    tmp_path: Path, traced_server: ServerProcess, collector: Collector
) -> None:
    (tmp_path / "caller.py").write_text(CALLER)
    (tmp_path / "served.py").write_text(SERVED)
    name = f"traced-{os.urandom(3).hex()}"
    served = _process(tmp_path, traced_server, collector, "served", "served.py", name)
    try:
        _wait_registered(traced_server, name, served)
        caller = _process(
            tmp_path, traced_server, collector, "caller", "caller.py", f"greet/{name}"
        )
        output, _ = caller.communicate(timeout=180)
        assert caller.returncode == 0, output
        assert "pipeline 12" in output, output
        assert "COMPLETED" in output, output
        deployment_run_id = output.split("deployment-run ")[1].split()[0]
    finally:
        served.terminate()
        served.communicate(timeout=60)
    traced_server.stop()  # flushes the server's last spans

    def complete(spans: list[Span]) -> bool:
        names = {(span.service, span.name) for span in spans}
        return {("caller", "caller"), ("served", "flow greet"), ("served", "task shout")} <= names

    spans = collector.wait_for(complete, "complete trace")
    root = one(spans, name="caller", service="caller")
    trace_spans = [span for span in spans if span.trace_id == root.trace_id]

    # The caller's own flow: a span under the caller's, its task runs under it.
    pipeline = one(trace_spans, name="flow pipeline")
    assert pipeline.parent_id == root.span_id
    assert pipeline.attributes["headwater.state.type"] == "COMPLETED"
    tasks = children(trace_spans, pipeline)
    assert sorted(span.name for span in tasks) == ["task add", "task double", "task double"]
    assert {span.attributes["headwater.flow_run.id"] for span in tasks} == {
        pipeline.attributes["headwater.flow_run.id"]
    }
    retried = [span for span in tasks if "retry" in span.events]
    assert len(retried) == 1
    assert retried[0].attributes["headwater.state.type"] == "COMPLETED"

    # The service continued the caller's trace, naming the run it created...
    create = one(trace_spans, name="headwater.v1.DeploymentService/CreateFlowRunFromDeployment")
    assert create.service == "headwater-server"
    assert create.parent_id == root.span_id
    assert create.attributes["headwater.flow_run.id"] == deployment_run_id
    statements = [
        span for span in children(trace_spans, create) if "db.statement" in span.attributes
    ]
    assert any("INSERT INTO flow_runs" in span.attributes["db.statement"] for span in statements)

    # ...and the served process, which ran it later, continued from there.
    greet = one(trace_spans, name="flow greet")
    assert greet.service == "served"
    assert greet.attributes["headwater.flow_run.id"] == deployment_run_id
    assert greet.parent_id == create.span_id
    assert greet.attributes["headwater.state.type"] == "COMPLETED"
    assert [span.name for span in children(trace_spans, greet)] == ["task shout"]

"""One trace from a Python caller through the service into flow runs and task runs.

Real processes only: a `headwater server start` subprocess, a caller script with its own
OpenTelemetry SDK set up as an application would, and a served flow (``flow.serve``) that picks
up the run the caller created through a deployment and executes it in its own subprocess. Each
exports with the real OTLP exporter, configured by the standard ``OTEL_*`` variables, to a small
OTLP collector in this test (`otlp_collector`), and the test checks the tree it received.
"""

from __future__ import annotations

import os
import shutil
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


    @flow
    def broken() -> None:
        raise ValueError("broken on purpose")


    with trace.get_tracer("caller").start_as_current_span("caller"):
        print("pipeline", pipeline(3), flush=True)
        print("broken", broken(return_state=True).type.name, flush=True)
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


NODE_CALLER = textwrap.dedent(
    """
    import { ROOT_CONTEXT, TraceFlags, context, propagation, trace } from "@opentelemetry/api";
    import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
    import { W3CTraceContextPropagator } from "@opentelemetry/core";

    const [clientUrl, address, deployment, traceId, spanId] = process.argv.slice(2);
    const { createHeadwaterClient } = await import(clientUrl);
    // What an application's OpenTelemetry setup registers.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const caller = trace.setSpanContext(ROOT_CONTEXT, {
      traceId,
      spanId,
      traceFlags: TraceFlags.SAMPLED,
    });
    const client = createHeadwaterClient({ address });
    const run = await context.with(caller, () => client.runDeployment(deployment));
    console.log(`run ${run.id}`);
    client.close();
    """
)

#: The service's spans for the engine-stream operations the tests look for.
CREATE_FLOW_RUN = "headwater.v1.FlowRunService/CreateFlowRun"
SET_FLOW_RUN_STATE = "headwater.v1.FlowRunService/SetFlowRunState"
CREATE_TASK_RUN = "headwater.v1.TaskRunService/CreateTaskRun"
SET_TASK_RUN_STATE = "headwater.v1.TaskRunService/SetTaskRunState"


def runs(spans: list[Span]) -> list[Span]:
    """The engine's flow run and task run spans among ``spans`` (not the service's)."""
    return [span for span in spans if span.name.startswith(("flow ", "task "))]


TYPESCRIPT_CLIENT = Path(__file__).resolve().parents[3] / "typescript_client"


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
        assert "broken FAILED" in output, output
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
    tasks = runs(children(trace_spans, pipeline))
    assert sorted(span.name for span in tasks) == ["task add", "task double", "task double"]
    assert {span.attributes["headwater.flow_run.id"] for span in tasks} == {
        pipeline.attributes["headwater.flow_run.id"]
    }
    retried = [span for span in tasks if "retry" in span.events]
    assert len(retried) == 1
    assert retried[0].attributes["headwater.state.type"] == "COMPLETED"
    # The service's span for each operation the engine sent on its stream, named like the
    # unary RPC it stands for, continues the engine's span it was sent in: the run's create
    # (sent before the run's span starts) the caller's, its state changes the flow run's...
    pipeline_id = pipeline.attributes["headwater.flow_run.id"]
    created = one(trace_spans, name=CREATE_FLOW_RUN, **{"headwater.flow_run.id": pipeline_id})
    assert created.service == "headwater-server"
    assert created.parent_id == root.span_id
    assert created.attributes["headwater.engine.operation"] == "create_flow_run"
    assert any(
        span.attributes.get("db.statement", "").startswith("INSERT INTO flow_runs")
        for span in children(trace_spans, created)
    )
    proposals = [s for s in children(trace_spans, pipeline) if s.name == SET_FLOW_RUN_STATE]
    assert len(proposals) >= 2  # RUNNING, then COMPLETED
    assert {s.attributes["headwater.flow_run.id"] for s in proposals} == {pipeline_id}
    # ...and a task run's create its flow run's, its state changes the task run's own span.
    task_creates = [s for s in children(trace_spans, pipeline) if s.name == CREATE_TASK_RUN]
    assert {s.attributes["headwater.task_run.id"] for s in task_creates} == {
        s.attributes["headwater.task_run.id"] for s in tasks
    }
    for task_span in tasks:
        changes = [s for s in children(trace_spans, task_span) if s.name == SET_TASK_RUN_STATE]
        assert changes, f"no state change span under {task_span.name}"
        assert {s.attributes["headwater.task_run.id"] for s in changes} == {
            task_span.attributes["headwater.task_run.id"]
        }
    broken = one(trace_spans, name="flow broken")
    assert broken.parent_id == root.span_id
    assert broken.attributes["headwater.state.type"] == "FAILED"
    assert broken.status_code == 2  # ERROR

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
    assert [span.name for span in runs(children(trace_spans, greet))] == ["task shout"]


def test_a_node_callers_trace_goes_on_into_the_python_flow_it_started(
    tmp_path: Path, traced_server: ServerProcess, collector: Collector
) -> None:
    built = TYPESCRIPT_CLIENT / "dist" / "index.js"
    node = shutil.which("node")
    if node is None or not built.exists():
        pytest.skip("needs node and the built TypeScript client (make test builds it)")
    (tmp_path / "served.py").write_text(SERVED)
    (tmp_path / "caller.mjs").write_text(NODE_CALLER)
    # The caller resolves @opentelemetry/* from the client's own packages.
    (tmp_path / "node_modules").symlink_to(TYPESCRIPT_CLIENT / "node_modules")
    name = f"node-{os.urandom(3).hex()}"
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    served = _process(tmp_path, traced_server, collector, "served", "served.py", name)
    try:
        _wait_registered(traced_server, name, served)
        args = [built.as_uri(), traced_server.address, f"greet/{name}", trace_id, span_id]
        caller = subprocess.run(
            [node, "caller.mjs", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert caller.returncode == 0, caller.stdout + caller.stderr
        run_id = caller.stdout.split("run ")[1].split()[0]
        from headwater.client import HeadwaterClient

        with HeadwaterClient(traced_server.address) as client:
            deadline = time.monotonic() + 120.0
            while not client.get_flow_run(run_id).state.is_final():
                assert time.monotonic() < deadline, "the served flow never finished the run"
                time.sleep(0.1)
    finally:
        served.terminate()
        served.communicate(timeout=60)
    traced_server.stop()

    def complete(spans: list[Span]) -> bool:
        return any(s.attributes.get("headwater.flow_run.id") == run_id for s in spans) and any(
            s.name == "task shout" for s in spans
        )

    spans = [s for s in collector.wait_for(complete, "the run's spans") if s.trace_id == trace_id]
    create = one(spans, name="headwater.v1.DeploymentService/CreateFlowRunFromDeployment")
    assert create.parent_id == span_id
    greet = one(spans, name="flow greet")
    assert greet.attributes["headwater.flow_run.id"] == run_id
    assert greet.parent_id == create.span_id
    assert greet.attributes["headwater.state.type"] == "COMPLETED"
    assert [span.name for span in runs(children(spans, greet))] == ["task shout"]

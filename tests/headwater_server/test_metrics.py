"""The service's metrics: scraped by Prometheus over HTTP, and pushed over OTLP.

A real `headwater server start` subprocess configured only by its environment
(``HEADWATER_METRICS_PORT``, the standard ``OTEL_*`` variables); the test makes runs, task runs,
a watch and a waiting deployment run over gRPC, then reads the figures as Prometheus and an OTLP
collector (`otlp_collector`) would.
"""

from __future__ import annotations

import datetime
import re
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from headwater.v1 import (
    deployments_pb2,
    deployments_pb2_grpc,
    flow_runs_pb2,
    flow_runs_pb2_grpc,
    task_runs_pb2,
    task_runs_pb2_grpc,
)
from otlp_collector import Collector, running_collector
from server_harness import ServerProcess, free_port

pytestmark = pytest.mark.integration

ServerFactory = Callable[..., ServerProcess]


class Api:
    """The stubs these tests call, on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.flow_runs = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
        self.task_runs = task_runs_pb2_grpc.TaskRunServiceStub(channel)
        self.deployments = deployments_pb2_grpc.DeploymentServiceStub(channel)

    def new_run(self) -> flow_runs_pb2.FlowRun:
        request = flow_runs_pb2.CreateFlowRunRequest(flow_name=f"flow-{uuid.uuid4().hex[:8]}")
        return self.flow_runs.CreateFlowRun(request).flow_run


NAMES = (
    "rpc.server.duration",
    "headwater.flow_runs",
    "headwater.task_runs.created",
    "headwater.watches.open",
    "headwater.scheduler.lag",
)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def _value(text: str, metric: str, **labels: str) -> float:
    """The sample of ``metric`` whose labels include ``labels`` (exactly one must match)."""
    found = []
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(metric)}(\{{(.*)\}})? (\S+)$", line)
        if match is None:
            continue
        present = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(present.get(key) == value for key, value in labels.items()):
            found.append(float(match.group(3)))
    assert len(found) == 1, f"{metric} {labels}: {found}\n{text}"
    return found[0]


def _deployment_run_waiting(api: Api) -> None:
    """A run of a deployment due a minute ago that no runner picked up."""
    deployment = api.deployments.CreateDeployment(
        deployments_pb2.CreateDeploymentRequest(
            deployment=deployments_pb2.Deployment(
                flow_name=f"etl-{uuid.uuid4().hex[:8]}", name="nightly"
            )
        )
    ).deployment
    request = deployments_pb2.CreateFlowRunFromDeploymentRequest(deployment_id=deployment.id)
    request.scheduled_time.FromDatetime(
        datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    )
    api.deployments.CreateFlowRunFromDeployment(request)


@pytest.fixture
def collector() -> Iterator[Collector]:
    yield from running_collector()


def test_prometheus_scrapes_rpc_latency_runs_by_state_task_runs_watches_and_lag(
    make_server: ServerFactory,
) -> None:
    port = free_port()
    server = make_server(env={"HEADWATER_METRICS_PORT": str(port)})
    with server.channel() as channel:
        api = Api(channel)
        run = api.new_run()
        for key in ("a", "b", "c"):
            api.task_runs.CreateTaskRun(
                task_runs_pb2.CreateTaskRunRequest(
                    flow_run_id=run.id, task_key="double", dynamic_key=key
                )
            )
        _deployment_run_waiting(api)
        watch = api.flow_runs.WatchFlowRun(flow_runs_pb2.WatchFlowRunRequest(flow_run_id=run.id))
        first = threading.Event()
        reader = threading.Thread(target=lambda: (next(watch), first.set()), daemon=True)
        reader.start()
        assert first.wait(30), "the watch sent nothing"
        try:
            text = _scrape(port)
        finally:
            watch.cancel()

    assert _value(text, "headwater_flow_runs", state="PENDING") == 1
    assert _value(text, "headwater_flow_runs", state="SCHEDULED") == 1
    assert _value(text, "headwater_task_runs_created_total") == 3
    assert _value(text, "headwater_watches_open") == 1
    assert _value(text, "headwater_scheduler_lag_seconds") >= 60
    created = _value(
        text,
        "rpc_server_duration_milliseconds_count",
        rpc_method="CreateTaskRun",
        rpc_grpc_status_code="0",
    )
    assert created == 3


def test_a_busy_metrics_port_stops_the_server_with_a_clear_message(
    make_server: ServerFactory,
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(AssertionError, match="Cannot serve metrics on port"):
            make_server(env={"HEADWATER_METRICS_PORT": str(busy)})


def test_otlp_receives_the_same_metrics(make_server: ServerFactory, collector: Collector) -> None:
    server = make_server(env=collector.environment("headwater-server"))
    with server.channel() as channel:
        api = Api(channel)
        run = api.new_run()
        api.task_runs.CreateTaskRun(
            task_runs_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t", dynamic_key="0")
        )
        with pytest.raises(grpc.RpcError):
            api.flow_runs.GetFlowRun(flow_runs_pb2.GetFlowRunRequest(flow_run_id="bad"))
    collector.wait_for_metrics(set(NAMES))

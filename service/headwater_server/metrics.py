"""OpenTelemetry metrics of the service, scraped by Prometheus and/or exported over OTLP.

Off unless asked for: ``HEADWATER_METRICS_PORT`` serves a Prometheus scrape endpoint
(``http://<server host>:<port>/metrics``), and the standard ``OTEL_METRICS_EXPORTER=otlp`` (or an
``OTEL_EXPORTER_OTLP_ENDPOINT`` with no ``OTEL_METRICS_EXPORTER``) pushes over OTLP every
``OTEL_METRIC_EXPORT_INTERVAL`` ms. The meter provider is the server's own, not the process's
global one, so a server embedded in an application neither takes over nor doubles its metrics.

Instruments (Prometheus names in brackets):

- ``rpc.server.duration`` histogram, ms, per ``rpc.service``/``rpc.method``/status code
  [``rpc_server_duration_milliseconds``]: every call's latency (a stream's is its lifetime).
- ``headwater.flow_runs`` gauge, per ``state`` [``headwater_flow_runs``]: runs by state type.
- ``headwater.task_runs.created`` counter [``headwater_task_runs_created_total``]: task runs per
  second is its rate.
- ``headwater.watches.open`` up-down counter [``headwater_watches_open``]: open WatchFlowRun
  streams.
- ``headwater.scheduler.lag`` gauge, s [``headwater_scheduler_lag_seconds``]: how long the
  longest-waiting due SCHEDULED run of a deployment has waited for a runner (0 when none).

The gauges read the database when a reader collects (on the database thread, through
``Database.run``), never on a request's path.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from headwater_server.telemetry import rewrap, status_of

if TYPE_CHECKING:
    from headwater_server.storage.database import Database

__all__ = ["MetricsInterceptor", "ServerMetrics", "otlp_metrics_wanted", "start_metrics"]

_METER_NAME = "headwater_server"
#: How long a gauge waits for the database before it reports nothing this time.
_GAUGE_TIMEOUT_SECONDS = 5.0
_WATCH_METHOD = "headwater.v1.FlowRunService/WatchFlowRun"


def start_metrics(
    port: int | None, host: str, db: Database, meter_provider: Any = None
) -> ServerMetrics | None:
    """Set up the server's metrics, or return None when nobody reads them.

    Args:
        port: The Prometheus scrape port (``HEADWATER_METRICS_PORT``); None serves none.
        host: The interface the scrape endpoint listens on (the gRPC server's).
        db: The database the gauges read.
        meter_provider: A provider of the caller's (an embedding application's, a test's);
            None builds one from the settings and ``OTEL_*`` variables.
    """
    readers: list[Any] = []
    http_server: Any = None
    if meter_provider is None:
        if port is not None:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry, start_http_server

            registry = CollectorRegistry()  # not the process-wide one: two servers, two sets
            readers.append(PrometheusMetricReader(registry=registry))
            http_server, _ = start_http_server(port, addr=host, registry=registry)
        if otlp_metrics_wanted():
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        if not readers:
            return None
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource

        name = os.environ.get("OTEL_SERVICE_NAME", "headwater-server")
        meter_provider = MeterProvider(
            metric_readers=readers, resource=Resource.create({"service.name": name})
        )
        owned = True
    else:
        owned = False
    return ServerMetrics(meter_provider, db, asyncio.get_running_loop(), owned, http_server)


def otlp_metrics_wanted() -> bool:
    exporters = os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if exporters:
        return "otlp" in {name.strip() for name in exporters.split(",")}
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


class ServerMetrics:
    """The service's instruments, and the exporters it owns (closed by :meth:`shutdown`)."""

    def __init__(
        self,
        provider: Any,
        db: Database,
        loop: asyncio.AbstractEventLoop,
        owned: bool,
        http_server: Any = None,
    ) -> None:
        from opentelemetry.metrics import Observation

        self._observation = Observation
        self._provider = provider
        self._owned = owned
        self._http_server = http_server
        self._db = db
        self._loop = loop
        meter = provider.get_meter(_METER_NAME)
        self.rpc_duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="How long each RPC took."
        )
        self.task_runs = meter.create_counter(
            "headwater.task_runs.created", unit="{task_run}", description="Task runs created."
        )
        self.watches = meter.create_up_down_counter(
            "headwater.watches.open", unit="{watch}", description="Open WatchFlowRun streams."
        )
        # Shown from the start (at 0), not from the first watch or task run.
        self.task_runs.add(0)
        self.watches.add(0)
        meter.create_observable_gauge(
            "headwater.flow_runs",
            callbacks=[self._flow_runs],
            unit="{flow_run}",
            description="Flow runs by state type.",
        )
        meter.create_observable_gauge(
            "headwater.scheduler.lag",
            callbacks=[self._scheduler_lag],
            unit="s",
            description="How long the longest-waiting due run of a deployment has waited.",
        )

    def interceptor(self) -> MetricsInterceptor:
        """The server interceptor that records RPC latencies and open watches."""
        return MetricsInterceptor(self)

    def task_runs_created(self, count: int = 1) -> None:
        """Count task runs the service created."""
        self.task_runs.add(count)

    def shutdown(self) -> None:
        """Export what is left and close the scrape endpoint (only what this server made)."""
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self._owned:
            self._provider.shutdown()

    def _read(self, fn: Callable[[], Any]) -> Any:
        """Run a repository read on the database thread from a reader's thread."""
        future = asyncio.run_coroutine_threadsafe(self._db.run(fn), self._loop)
        return future.result(timeout=_GAUGE_TIMEOUT_SECONDS)

    def _flow_runs(self, options: Any) -> Iterable[Any]:
        from headwater.v1 import states_pb2

        try:
            counts = self._read(self._db.repository.flow_run_counts)
        except Exception:  # stopping, or the database is away: report nothing this time
            return []
        return [
            self._observation(count, {"state": states_pb2.StateType.Name(state)[11:]})
            for state, count in counts.items()
        ]

    def _scheduler_lag(self, options: Any) -> Iterable[Any]:
        try:
            oldest = self._read(self._db.repository.oldest_due_scheduled_time)
        except Exception:
            return []
        lag = 0.0 if oldest is None else max(time.time() - oldest / 1e6, 0.0)
        return [self._observation(lag)]


# grpc ships no type stubs, so mypy sees its base class as Any.
class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Records each call's latency and status, and counts the open watches."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.lstrip("/")
        service, _, name = method.partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        return rewrap(
            handler,
            lambda behavior: self._unary(behavior, attributes),
            lambda behavior: self._streaming(behavior, attributes, method == _WATCH_METHOD),
        )

    def _record(self, started: float, context: grpc.aio.ServicerContext, attributes: Any) -> None:
        _, code = status_of(context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._metrics.rpc_duration.record(elapsed_ms, {**attributes, "rpc.grpc.status_code": code})

    def _unary(
        self, behavior: Callable[..., Awaitable[Any]], attributes: dict[str, str]
    ) -> Callable[..., Awaitable[Any]]:
        async def measured(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return await behavior(request, context)
            finally:
                self._record(started, context, attributes)

        return measured

    def _streaming(
        self, behavior: Callable[..., AsyncIterator[Any]], attributes: dict[str, str], watch: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        watches = self._metrics.watches

        async def measured(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            if watch:
                watches.add(1)
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                if watch:
                    watches.add(-1)
                self._record(started, context, attributes)

        return measured

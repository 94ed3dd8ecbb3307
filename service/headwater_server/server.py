"""Build, start and stop the Headwater gRPC server.

:func:`start_server` is the one way to run the service: the CLI (through :func:`serve`), the
SDK's embedded mode and the tests all call it, so they all get the same servicers, reflection,
health checking, keepalive policy and shutdown sequence.

Shutdown order matters for clients: health turns NOT_SERVING first (load balancers stop routing),
watches and engine streams end with UNAVAILABLE after answering what they already received (the
SDK reconnects and resumes), the gRPC server then stops with a grace period for in-flight unary
calls, and the database closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from headwater_server.events import EventHub
from headwater_server.servicers import (
    SERVICE_NAMES,
    Backend,
    DecodeErrorInterceptor,
    add_servicers,
)
from headwater_server.servicers.engine_direct import DirectLane
from headwater_server.servicers.engine_local import LocalEngineCall
from headwater_server.settings import ServerSettings, ServerSettingsError

if TYPE_CHECKING:
    from grpc_health.v1.health import aio as health_aio

    from headwater_server.metrics import ServerMetrics
    from headwater_server.storage.database import Database
    from headwater_server.storage.notify import PostgresNotifier

logger = logging.getLogger("headwater_server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_GRACE_SECONDS = 5.0

# Clients ping idle long polls, watches and engine streams (every 20 s by default); the server
# must accept those pings or it answers GOAWAY "too_many_pings" and drops the stream. The server
# pings its clients too, every 10 s with 5 s to answer, so the stream of an SDK process on a
# machine that vanished (no RST ever comes) ends within ~15 s and its runs can be ended CRASHED
# after the grace period (see liveness.py). A ping costs a few bytes; gRPC's C core answers it
# without the client's GIL, so a busy Python process is never taken for a dead one.
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # Without this, a second server on a busy port binds "successfully" and steals half the
    # connections; a clear "port in use" error is better.
    ("grpc.so_reuseport", 0),
)

_HEALTH_SERVICE_NAME = "grpc.health.v1.Health"


class ServerStartError(RuntimeError):
    """The server could not start: the database cannot be opened or the address is taken.

    Its message is one line meant for the person who started the server (the CLI prints it
    without a traceback and exits 1), so it says what failed and what to do about it.
    """


@dataclass
class RunningServer:
    """A started server. ``await stop()`` shuts it down cleanly; it is idempotent."""

    address: str
    """What clients dial, with the real port ("127.0.0.1:4200", "unix-abstract:name")."""
    port: int
    """The bound TCP port (0 for unix sockets)."""
    database_url: str
    _server: grpc.aio.Server = field(repr=False)
    _backend: Backend = field(repr=False)
    _health: health_aio.HealthServicer = field(repr=False)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _stopping: bool = field(default=False, repr=False)
    _upkeep: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _notifier: PostgresNotifier | None = field(default=None, repr=False)
    _metrics: ServerMetrics | None = field(default=None, repr=False)

    async def stop(self, grace: float = DEFAULT_GRACE_SECONDS) -> None:
        """Stop serving: health NOT_SERVING, streams end UNAVAILABLE, in-flight calls finish.

        Args:
            grace: Seconds in-flight calls get to finish before they are cancelled.
        """
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            await self._health.enter_graceful_shutdown()
            backend = self._backend
            backend.stopping.set()
            backend.hub.close()
            sessions = [session.shutdown() for session in tuple(backend.engine_sessions)]
            if sessions:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*sessions), timeout=grace)
            await self._server.stop(grace)
        finally:
            for task in self._upkeep:
                task.cancel()
            await asyncio.gather(*self._upkeep, return_exceptions=True)
            if self._notifier is not None:
                await self._notifier.stop()
            if self._metrics is not None:  # last exports, scrape endpoint closed
                await asyncio.to_thread(self._metrics.shutdown)
            await asyncio.to_thread(self._backend.db.close)
            self._stopped.set()

    def connect_engine(self, metadata: Iterable[tuple[str, str]]) -> LocalEngineCall:
        """An ``EngineService.Connect`` stream for an engine in this very process, without the
        socket (`headwater_server.servicers.engine_local`). Call it on the server's loop."""
        return LocalEngineCall(self._backend, metadata)

    def direct_lane(self, owned: bool) -> DirectLane:
        """The direct lane for an engine in this very process: its task runs' starts and ends
        go straight to the database thread (`headwater_server.servicers.engine_direct`)."""
        return DirectLane(self._backend, owned)

    async def wait_for_termination(self) -> None:
        """Wait until the server stopped (through :meth:`stop` or a fatal gRPC error)."""
        await self._server.wait_for_termination()


async def start_server(
    address: str,
    settings: ServerSettings | str,
    *,
    tracer_provider: object | None = None,
    meter_provider: object | None = None,
) -> RunningServer:
    """Open the database, then start serving every headwater.v1 service on ``address``.

    Args:
        address: "host:port" ("127.0.0.1:0" picks a free port) or "unix-abstract:name".
        settings: The server's settings (``ServerSettings.from_environ()`` reads the usual
            variables), or just a database URL with every other setting at its default, e.g.
            "sqlite:////home/me/.headwater/headwater.db" or "postgresql+psycopg://user@host/db".
            The schema is migrated to the latest version.
        tracer_provider: An OpenTelemetry tracer provider for server spans; None uses the
            global one (spans are only recorded when one is configured).
        meter_provider: An OpenTelemetry meter provider for the server's metrics; None builds
            one when ``settings.metrics_port`` or the ``OTEL_*`` variables ask for metrics.

    Raises:
        ServerStartError: The database cannot be opened, or the address cannot be bound (for
            example the port is in use). A ``RuntimeError``, so older callers still catch it.
    """
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from headwater_server.reflection import add_reflection
    from headwater_server.storage.database import Database

    if isinstance(settings, str):
        settings = ServerSettings(database_url=settings)
    # Fail on a busy port before opening (and perhaps migrating) the database, and without
    # gRPC's own multi-line complaint on stderr.
    _check_address_free(address)
    try:
        database_url = settings.resolved_database_url()
    except ServerSettingsError as exc:
        raise ServerStartError(f"Cannot create the database: {exc.problems[0]}.") from exc
    try:
        db = await asyncio.to_thread(Database.open, database_url)
    except Exception as exc:
        raise ServerStartError(
            f"Cannot open the database {_display_url(database_url)}: "
            f"{_sentence(_database_problem(exc))} Check the URL (--database-url or "
            "HEADWATER_DATABASE_URL) and that the database server is up."
        ) from exc
    notifier = None
    metrics: ServerMetrics | None = None
    try:
        hub = EventHub(_last_sequence_reader(db), _wake_recheck_seconds(settings, db))
        backend = Backend(db=db, hub=hub)
        notifier = await _start_notifier(db, hub)
        interceptors = _interceptors(tracer_provider, db)
        metrics = _metrics(settings, address, db, meter_provider)
        if metrics is not None:
            backend.metrics = metrics
            interceptors.append(metrics.interceptor())
        options = (
            *SERVER_OPTIONS,
            ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        )
        server = grpc.aio.server(options=options, interceptors=interceptors)
        add_servicers(server, backend)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        add_reflection(server, (*SERVICE_NAMES, _HEALTH_SERVICE_NAME))
        port = _bind(server, address)
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    except BaseException:
        if notifier is not None:
            await notifier.stop()
        if metrics is not None:
            await asyncio.to_thread(metrics.shutdown)
        await asyncio.to_thread(db.close)
        raise
    bound = _with_port(address, port)
    upkeep = _start_upkeep(backend, settings)
    return RunningServer(
        address=bound,
        port=port if not address.startswith("unix") else 0,
        database_url=database_url,
        _server=server,
        _backend=backend,
        _health=health_servicer,
        _upkeep=upkeep,
        _notifier=notifier,
        _metrics=metrics,
    )


# How long waiters go without looking in storage when nothing notified them (see settings).
_SQLITE_WAKE_RECHECK_SECONDS = 1.0
_POSTGRES_WAKE_RECHECK_SECONDS = 10.0


def _wake_recheck_seconds(settings: ServerSettings, db: Database) -> float:
    if settings.wake_recheck_seconds is not None:
        return settings.wake_recheck_seconds
    if db.dialect == "postgresql":
        return _POSTGRES_WAKE_RECHECK_SECONDS
    return _SQLITE_WAKE_RECHECK_SECONDS


async def _start_notifier(db: Database, hub: EventHub) -> PostgresNotifier | None:
    """On PostgreSQL, connect this server's hub with the other servers' (LISTEN/NOTIFY)."""
    if db.dialect != "postgresql":
        return None  # SQLite has no such channel: the waiters' re-check covers other processes
    from headwater_server.storage.notify import PostgresNotifier, connect_kwargs

    notifier = PostgresNotifier(connect_kwargs(db.engine), hub.from_peers())
    await notifier.start()
    hub.relay = notifier
    return notifier


def _start_upkeep(backend: Backend, settings: ServerSettings) -> list[asyncio.Task[None]]:
    """Start the background loops the settings ask for; the server cancels them at stop."""
    from headwater_server.housekeeping import expire_old_data_forever, prune_request_log_forever
    from headwater_server.liveness import LivenessPolicy, reap_forever, refresh_engines_forever
    from headwater_server.scheduling.late_runs import mark_late_runs_forever
    from headwater_server.scheduling.scheduler import FillPolicy, Scheduler

    db = backend.db
    scheduler = Scheduler(
        backend,
        FillPolicy(
            min_runs=settings.scheduler_min_runs,
            max_runs=settings.scheduler_max_runs,
            min_ahead=timedelta(seconds=settings.scheduler_min_ahead_seconds),
            max_ahead=timedelta(seconds=settings.scheduler_max_ahead_seconds),
        ),
    )
    loops = {
        "scheduler": scheduler.run_forever(settings.scheduler_loop_seconds),
        "late-runs": mark_late_runs_forever(
            backend, settings.late_run_after_seconds, settings.late_runs_loop_seconds
        ),
        "prune-request-log": prune_request_log_forever(db, settings.request_log_retention_seconds),
    }
    liveness = LivenessPolicy(
        grace_seconds=settings.engine_grace_seconds,
        timeout_seconds=settings.engine_timeout_seconds,
        cancelling_timeout_seconds=settings.cancelling_timeout_seconds,
        worker_lease_seconds=settings.worker_lease_seconds,
    )
    loops["refresh-engines"] = refresh_engines_forever(backend, liveness)
    loops["crash-detection"] = reap_forever(backend, liveness)
    if settings.run_retention_seconds is not None or settings.log_retention_seconds is not None:
        loops["retention"] = expire_old_data_forever(
            db,
            settings.run_retention_seconds,
            settings.log_retention_seconds,
            settings.retention_loop_seconds,
        )
    return [asyncio.create_task(loop, name=name) for name, loop in loops.items()]


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    settings: ServerSettings | None = None,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> None:
    """Run the server in the foreground until SIGTERM or SIGINT (Ctrl-C), then stop cleanly.

    Args:
        host: The interface to listen on; "0.0.0.0" for every interface.
        port: The TCP port; 0 picks a free one (printed at start).
        settings: The server's settings; None reads them from the environment.
        grace: Seconds in-flight calls get to finish at shutdown.

    Raises:
        ServerStartError: The server cannot start (bad settings, busy port, no database).
    """
    from headwater_server import memory, telemetry

    memory.return_large_blocks_to_the_system()
    if settings is None:
        try:
            settings = ServerSettings.from_environ()
        except ServerSettingsError as exc:
            raise ServerStartError(str(exc)) from exc
    _configure_logging()
    telemetry.configure_from_environment()
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C during shutdown
        asyncio.run(_serve(host, port, settings, grace))


async def _serve(host: str, port: int, settings: ServerSettings, grace: float) -> None:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before starting: health says SERVING from inside start_server, and a supervisor (or a
    # test) may send SIGTERM the moment it sees that; it must get a clean stop, not a kill.
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Off the main thread (or on Windows) this fails; the caller then stops us another way.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    running = await start_server(address, settings)
    print(
        f"Headwater server listening on {running.address}, "
        f"database {_display_url(running.database_url)}",
        file=sys.stderr,
        flush=True,
    )
    terminated = asyncio.ensure_future(running.wait_for_termination())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait((terminated, stopped), return_when=asyncio.FIRST_COMPLETED)
    print("Headwater server shutting down...", file=sys.stderr, flush=True)
    await running.stop(grace)
    for task in (terminated, stopped):
        task.cancel()
    print("Headwater server stopped.", file=sys.stderr, flush=True)


def _last_sequence_reader(db: Database) -> Callable[[str], Awaitable[int]]:
    async def read(flow_run_id: str) -> int:
        last_sequence, _finished = await db.run(db.repository.get_flow_run_progress, flow_run_id)
        return last_sequence

    return read


def _bind(server: grpc.aio.Server, address: str) -> int:
    try:
        port: int = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ServerStartError(
            f"Cannot listen on {address}: {_sentence(_grpc_bind_problem(exc))} Is another "
            "server using it? Stop it, or pick another port (--port, or port 0 for a free one)."
        ) from exc
    if port == 0 and not address.startswith("unix"):
        raise ServerStartError(
            f"Cannot listen on {address}: the port is in use or the host is not local. Stop the "
            "other server, or pick another port (--port, or port 0 for a free one)."
        )
    return port


def _check_address_free(address: str) -> None:
    """Raise ServerStartError when the TCP ``address`` is taken, impossible or not on this machine.

    gRPC finds this out too, but only after the database is open, and it first writes its own
    C-core log lines to stderr and then a vague "Failed to bind". Other problems (say no IPv6
    for one of several resolved addresses) are left to gRPC, which knows which addresses it can
    skip.
    """
    if address.startswith("unix"):
        return
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        return
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ServerStartError(
            f"Cannot listen on {address}: the host '{host}' is neither an IP address nor a name "
            f"this machine can resolve ({exc.strerror or 'lookup failed'}). Use an address of "
            "this machine (--host 127.0.0.1 for this machine only, 0.0.0.0 for all)."
        ) from None
    except (OverflowError, OSError):
        return
    not_local = 0
    for family, kind, proto, _name, sockaddr in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            # Like gRPC's own listener: a port whose old connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and port != 0:
                    raise ServerStartError(
                        f"Cannot listen on {address}: the port is already in use. Is another "
                        "server using it? Stop it, or pick another port (--port, or port 0 for "
                        "a free one)."
                    ) from exc
                if exc.errno == errno.EADDRNOTAVAIL:
                    not_local += 1
    if infos and not_local == len(infos):
        raise ServerStartError(
            f"Cannot listen on {address}: {host} is not an address of this machine. Use one of "
            "its own addresses (--host 127.0.0.1 for this machine only, 0.0.0.0 for all)."
        )


def _grpc_bind_problem(exc: BaseException) -> str:
    """gRPC's bind error without its advice to set GRPC_VERBOSITY or its final period."""
    text = " ".join(str(exc).split())
    text = text.split("; set GRPC_VERBOSITY")[0]
    return text or "the address cannot be bound"


def _database_problem(exc: BaseException) -> str:
    """The driver's own words for why the database cannot be opened, on one line.

    SQLAlchemy wraps driver errors as "(psycopg.OperationalError) ... (Background on this
    error at: ...)"; the driver's message (``orig``) is the useful part. Drivers write it over
    several lines ("...: Connection refused" then "Is the server running...?"), each line a
    sentence without its full stop; joined with the stops they read as sentences on one line.
    """
    original = getattr(exc, "orig", None)
    text = str(original) if original is not None else str(exc)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    ended = [line if line.endswith((".", "?", "!", ":", ";")) else f"{line}." for line in lines]
    return " ".join([*ended[:-1], lines[-1]])


def _sentence(text: str) -> str:
    """``text`` ending in exactly one full stop (or its own "?" or "!"), to join more after."""
    text = text.rstrip(" .")
    return text if text.endswith(("?", "!")) else f"{text}."


def _with_port(address: str, port: int) -> str:
    if address.startswith("unix"):
        return address
    host, _, _ = address.rpartition(":")
    return f"{host}:{port}"


def _display_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _interceptors(tracer_provider: object | None, db: Database) -> list[grpc.aio.ServerInterceptor]:
    from headwater_server import telemetry

    # The decoding guard comes first (outermost), so it also covers what tracing wraps.
    interceptors: list[grpc.aio.ServerInterceptor] = [DecodeErrorInterceptor()]
    provider = telemetry.active_provider(tracer_provider)
    if provider is not None:
        from headwater_server.sql_spans import trace_database

        interceptors.append(telemetry.TracingInterceptor.for_provider(provider))
        trace_database(db, provider)  # SQL statements as child spans of each call's span
    return interceptors


def _metrics(
    settings: ServerSettings, address: str, db: Database, meter_provider: object | None
) -> ServerMetrics | None:
    """The server's metrics when anything reads them; the scrape endpoint on its host."""
    from headwater_server.metrics import otlp_metrics_wanted, start_metrics

    if meter_provider is None and settings.metrics_port is None and not otlp_metrics_wanted():
        return None  # the common case, decided without importing OpenTelemetry

    host = address.rpartition(":")[0].strip("[]") if not address.startswith("unix") else ""
    try:
        return start_metrics(settings.metrics_port, host or DEFAULT_HOST, db, meter_provider)
    except OSError as exc:
        raise ServerStartError(
            f"Cannot serve metrics on port {settings.metrics_port}: {exc.strerror or exc}. "
            "Choose a free port (HEADWATER_METRICS_PORT)."
        ) from exc


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        # Alembic narrates every plugin it loads at INFO; only its warnings matter here.
        logging.getLogger("alembic").setLevel(logging.WARNING)

"""The embedded server: Headwater without a server to run, as Prefect's ephemeral mode is.

With ``HEADWATER_API_URL`` unset, the SDK starts the real server code inside this process, on
the background loop, listening on an abstract unix socket that only this machine can reach, and
storing runs in the local SQLite database (``$HEADWATER_HOME/headwater.db``) unless
``HEADWATER_DATABASE_URL`` names another: the server's own settings
(`headwater_server.settings.ServerSettings`), read from the environment when it starts.
Flows then talk to it over real gRPC exactly as they would to a remote server.

The server's stack (SQLAlchemy, Alembic, reflection) is imported here and only here, on first
use, so ``import headwater`` stays fast and a process that talks to a remote server never loads
it. This module holds no process-wide state: `headwater._transport.runtime` keeps the one
embedded server of a process and decides when it starts and stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from headwater._telemetry import serving_in_process

if TYPE_CHECKING:
    from headwater_server.settings import ServerSettings

    from headwater._transport.loop import BackgroundLoop

__all__ = ["EmbeddedServer"]

#: Seconds the server gives in-flight calls to finish when the process exits.
_STOP_GRACE = 1.0


class EmbeddedServer:
    """The real server, running on the background loop of this process.

    Attributes:
        address: What the engine stream dials, ``unix-abstract:headwater-<pid>-<random>``.
    """

    def __init__(self, address: str, running: Any) -> None:
        self.address = address
        self._running = running
        # Its direct lane (see `submit_direct`); a restarted server is a new EmbeddedServer.
        self._lane: Any = running.direct_lane(owned=True)

    @classmethod
    def start(cls, loop: BackgroundLoop) -> EmbeddedServer:
        """Start the server on ``loop``, on the database the settings name.

        Raises:
            SettingsError: A server variable holds a value the server cannot use.
            ServiceUnavailable: The server could not start (for example the database cannot be
                opened); the message says what to change.
        """
        settings, database_url = _server_settings()
        address = f"unix-abstract:headwater-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with _no_collection_while_loading():
                # Imported on the caller's thread, not the loop's (start_server would import
                # the storage layer there): the import takes a while and the loop may already
                # be serving a connection.
                import headwater_server.storage.database  # noqa: F401
                from headwater_server.server import start_server

                running = loop.run_sync(start_server(address, settings))
            serving_in_process(address)  # tracing hook: its engine stream needs no contexts
        except Exception as exc:
            from headwater.exceptions import ServiceUnavailable, clause

            raise ServiceUnavailable(
                "EMBEDDED_SERVER_FAILED",
                f"Could not start the embedded Headwater server on {_redact(database_url)}: "
                f"{type(exc).__name__}: {clause(exc)}. Fix HEADWATER_DATABASE_URL or "
                "HEADWATER_HOME, "
                "or set HEADWATER_API_URL to use a running server (`headwater server start`).",
            ) from exc
        return cls(address, running)

    def connect_engine(self, metadata: tuple[tuple[str, str], ...]) -> Any:
        """This process's engine stream to the server, in-process (on the background loop).

        The engine and the server share the loop, so their messages need no socket: the
        stream hands them over directly (`headwater_server.servicers.engine_local`), with the
        same operations, order and answers as over gRPC, at about a quarter less of a
        sequential task's cost. Other processes (process-pool task runners, Dask workers)
        and this process's other calls (watches) reach the server over its socket.

        Raises:
            grpc.aio.AioRpcError: UNAVAILABLE, the server was stopped (the stream then waits
                and retries as it would for a remote server that went away).
        """
        running = self._running
        if running is None:
            import grpc
            import grpc.aio

            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "The embedded Headwater server was stopped.",
            )
        return running.connect_engine(metadata)

    def submit_direct(
        self,
        requests: Sequence[Any],
        deliver: Callable[[list[Any]], object],
        inline: bool = False,
    ) -> bool | Callable[[], None]:
        """Hand task run starts and ends straight to the server's database thread (any thread).

        The engine's direct lane (`headwater_server.servicers.engine_direct`): the same
        operations as on the stream, without the two loop wake-ups each costs there.
        ``deliver`` gets the outcomes on the database thread once they are stored. False, with
        nothing queued, when they must take the stream (the caller then sends them there);
        True when queued. With ``inline`` (the caller will block until ``deliver`` has run),
        maybe the function that stores them on the caller's thread instead, which it must
        call at once, holding none of its locks (`DirectLane.submit`).
        """
        if self._running is None:  # stopped
            return False
        taken: bool | Callable[[], None] = self._lane.submit(requests, deliver, inline)
        return taken

    def stop(self, loop: BackgroundLoop) -> None:
        """Stop serving (in-flight calls get a short grace); never raises."""
        running, self._running = self._running, None
        if running is None:
            return
        try:
            loop.run_sync(running.stop(_STOP_GRACE), timeout=_STOP_GRACE + 10)
        except Exception as exc:  # at exit there is nobody left to raise to
            print(f"headwater: the embedded server did not stop cleanly: {exc}", file=sys.stderr)


def _server_settings() -> tuple[ServerSettings, str]:
    """The embedded server's own settings, read as a standalone server reads them.

    Server-only variables belong to the server (`headwater_server.settings`); this only turns
    its complaint into the SDK's `SettingsError`, so a flow caller sees the variable to fix
    rather than a traceback from the server package.

    Returns:
        The settings, and the database URL they resolve to (the home created for SQLite).

    Raises:
        SettingsError: A server variable (HEADWATER_HOME, HEADWATER_DATABASE_URL, ...) holds a
            value the server cannot use; each problem names its variable.
    """
    from headwater_server.settings import ServerSettings, ServerSettingsError

    from headwater.exceptions import SettingsError

    try:
        settings = ServerSettings.from_environ()
        database_url = settings.resolved_database_url()
    except ServerSettingsError as exc:
        hint = "or set HEADWATER_API_URL to use a running server"
        raise SettingsError([f"{problem}; {hint}" for problem in exc.problems]) from None
    return dataclasses.replace(settings, database_url=database_url), database_url


@contextlib.contextmanager
def _no_collection_while_loading() -> Iterator[None]:
    """Pause the cyclic garbage collector while the server's stack loads and starts.

    Importing SQLAlchemy, the servicers and gRPC's server side allocates hundreds of thousands
    of long-lived objects and almost no garbage, yet the allocations trigger collections that
    traverse everything loaded so far: about 10% of a cold start here, for nothing. The pause
    lasts only this start-up (a fraction of a second) and leaves a collector that the
    application had switched off switched off.

    Once loaded, those objects are frozen (`gc.freeze`): they live as long as the process, and
    every full collection would walk them all again. Runs in flight (a thousand submitted
    tasks) promote enough objects to set off a full collection every thousand tasks or so,
    which cost tens of microseconds per task here. The price: an object alive now that later
    becomes unreachable only through a reference cycle is not reclaimed (memory freed by
    reference counting, nearly all of it, is freed as before).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _redact(url: str) -> str:
    """The database URL without its password, fit for an error message."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"

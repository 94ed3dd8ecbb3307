"""The embedded server: Headwater without a server to run, as Prefect's ephemeral mode is.

With ``HEADWATER_API_URL`` unset, the SDK starts the real server code inside this process, on
the background loop, listening on an abstract unix socket that only this machine can reach, and
storing runs in the local SQLite database (``$HEADWATER_HOME/headwater.db``). Flows then talk to
it over real gRPC exactly as they would to a remote server.

The server's stack (SQLAlchemy, Alembic, reflection) is imported here and only here, on first
use, so ``import headwater`` stays fast and a process that talks to a remote server never loads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from headwater import _loop

__all__ = ["ensure_embedded_server", "stop_embedded_server"]

_address: str | None = None
_server: Any = None
_lock = threading.Lock()

#: Seconds the server gives in-flight calls to finish when the process exits.
_STOP_GRACE = 1.0


def ensure_embedded_server() -> str:
    """Start the embedded server once per process and return its address.

    Raises:
        ServiceUnavailable: The server could not start (for example the database cannot be
            opened); the message says what to change.
    """
    global _address, _server
    address = _address
    if address is not None:
        return address
    with _lock:
        if _address is not None:
            return _address
        from headwater._settings import get_settings

        database_url = get_settings().resolved_database_url()
        address = f"unix-abstract:headwater-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with _no_collection_while_loading():
                # Imported on the caller's thread, not the loop's (start_server would import
                # the storage layer there): the import takes a while and the loop may already
                # be serving a connection.
                import headwater_server.storage.database  # noqa: F401
                from headwater_server.server import start_server
                from headwater_server.settings import ServerSettings

                settings = ServerSettings.from_environ()
                settings = dataclasses.replace(settings, database_url=database_url)
                _server = _loop.run_sync(start_server(address, settings))
        except Exception as exc:
            from headwater.exceptions import ServiceUnavailable

            raise ServiceUnavailable(
                "EMBEDDED_SERVER_FAILED",
                f"Could not start the embedded Headwater server on {_redact(database_url)}: "
                f"{type(exc).__name__}: {str(exc).rstrip(' .')}. Fix HEADWATER_DATABASE_URL or "
                "HEADWATER_HOME, "
                "or set HEADWATER_API_URL to use a running server (`headwater server start`).",
            ) from exc
        _address = address
        _loop.register_exit_hook(stop_embedded_server)
        return address


@contextlib.contextmanager
def _no_collection_while_loading() -> Iterator[None]:
    """Pause the cyclic garbage collector while the server's stack loads and starts.

    Importing SQLAlchemy, the servicers and gRPC's server side allocates hundreds of thousands
    of long-lived objects and almost no garbage, yet the allocations trigger collections that
    traverse everything loaded so far: about 10% of a cold start here, for nothing. The pause
    lasts only this start-up (a fraction of a second) and leaves a collector that the
    application had switched off switched off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stop_embedded_server() -> None:
    """Stop the embedded server, after the engine connection has flushed what it sent."""
    global _address, _server
    with _lock:
        server, _server = _server, None
        _address = None
    if server is None:
        return
    client = sys.modules.get("headwater._client")
    if client is not None:
        client.close_connection()
    try:
        _loop.run_sync(server.stop(_STOP_GRACE), timeout=_STOP_GRACE + 10)
    except Exception as exc:  # at exit there is nobody left to raise to
        print(f"headwater: the embedded server did not stop cleanly: {exc}", file=sys.stderr)


def _redact(url: str) -> str:
    """The database URL without its password, fit for an error message."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _forget_after_fork() -> None:
    """A forked child does not own its parent's server; it starts its own on first use."""
    global _address, _server, _lock
    _address = None
    _server = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

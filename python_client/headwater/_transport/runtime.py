"""The one owner of the SDK's process-wide machinery: the loop, the connections, the shutdown.

A process that runs flows needs a background event loop (`headwater._transport.loop`), perhaps
the embedded server (`headwater._transport.embedded`), and a stream to each service it talks
to (`headwater._transport.stream`). They are started here on first use, closed here at
interpreter exit in the one order that loses nothing (ship buffered log lines, flush and close
every stream while the server can still answer, stop the embedded server, stop the loop), and
forgotten here in a forked child, which cannot use its parent's threads or sockets.

The default transport (HEADWATER_API_URL's service, or the embedded one) is a default, not the
only choice: `open_transport` gives a stream to another service, closed at exit like the
default one, and the engine runs a flow on whichever transport it is handed.

Example::

    from headwater._transport.runtime import default_transport, open_transport

    default_transport()                    # HEADWATER_API_URL's service, or the embedded one
    other = open_transport("10.0.0.7:4200")
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING

from headwater._context import _current_flow_run
from headwater._transport.loop import BackgroundLoop, skip_teardown_collection

if TYPE_CHECKING:
    from headwater._transport.embedded import EmbeddedServer
    from headwater._transport.interface import Transport
    from headwater._transport.stream.connection import EngineConnection
    from headwater._transport.stream.transport import StreamTransport

__all__ = [
    "Runtime",
    "background_loop",
    "connect",
    "default_transport",
    "open_transport",
    "reset",
    "service_address",
    "transport_for_call",
]


class Runtime:
    """The loop, the embedded server and the streams of one process (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._loop: BackgroundLoop | None = None
        self._embedded: EmbeddedServer | None = None
        self._default: StreamTransport | None = None
        self._opened: list[StreamTransport] = []
        self._exiting = False

    def background_loop(self) -> BackgroundLoop:
        """The background loop, started on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._exiting:
                raise RuntimeError(
                    "Headwater's background loop has stopped: the interpreter is exiting."
                )
            if self._loop is None:
                self._loop = BackgroundLoop()
                _register_exit_hook()
            return self._loop

    def service_address(self) -> str:
        """``HEADWATER_API_URL``, or the embedded server's address (started on first use)."""
        from headwater._settings import get_settings

        address = get_settings().api_url
        if address is not None:
            return address
        with self._lock:
            if self._embedded is None:
                from headwater._telemetry import configure_from_environment
                from headwater._transport.embedded import EmbeddedServer

                # Before the server starts, so it traces with the provider OTEL_* asks for.
                configure_from_environment()
                self._embedded = EmbeddedServer.start(self.background_loop())
                # Again, now that the server's stack (and its thread pools) are loaded: the
                # later registration runs first, before those pools shut down.
                _register_exit_hook()
            return self._embedded.address

    def default_transport(self) -> StreamTransport:
        """The stream to the process's service, opened on first use."""
        transport = self._default
        if transport is not None:
            return transport
        with self._lock:
            if self._default is None:
                self._default = self._open(self.service_address())
            return self._default

    def open_transport(
        self, address: str, *, retry_timeout: float | None = None
    ) -> StreamTransport:
        """A new stream to the service at ``address``; closed at exit (or by `close`)."""
        with self._lock:
            transport = self._open(address, retry_timeout=retry_timeout)
            self._opened.append(transport)
            return transport

    def connect(
        self,
        address: str,
        *,
        retry_timeout: float | None = None,
        keepalive_time_ms: int | None = None,
    ) -> EngineConnection:
        """A bare engine stream to ``address`` on the background loop (the caller closes it).

        Raises:
            ValueError: ``address`` can never work; the message says what form is expected.
        """
        from headwater._transport.channel import checked_target
        from headwater._transport.stream.connection import EngineConnection

        embedded = self._embedded
        own = embedded if embedded is not None and embedded.address == address else None
        return EngineConnection(
            checked_target(address),
            loop=self.background_loop(),
            retry_timeout=retry_timeout,
            keepalive_time_ms=keepalive_time_ms,
            # The embedded server's own engine stream skips the socket (see embedded.py).
            local=own.connect_engine if own is not None else None,
            direct=own.submit_direct if own is not None else None,
        )

    def _open(self, address: str, *, retry_timeout: float | None = None) -> StreamTransport:
        from headwater._transport.stream.transport import StreamTransport

        return StreamTransport(self.connect(address, retry_timeout=retry_timeout))

    def reset(self) -> None:
        """Close the streams and stop the embedded server; the next use starts afresh.

        For tests that switch services, and for the exit sequence. The loop keeps running.
        """
        with self._lock:
            transports = [self._default, *self._opened]
            self._default = None
            self._opened = []
            embedded, self._embedded = self._embedded, None
        for transport in transports:
            if transport is not None:
                transport.close()  # ships buffered log lines, then flushes
        if embedded is not None and self._loop is not None:
            embedded.stop(self._loop)

    def shutdown(self) -> None:
        """At interpreter exit: close everything, in order, and stop the loop.

        The closed default transport stays in place, so a late caller (another exit hook) gets
        a clear "connection closed" error and an instant flush, instead of a new connection and
        a new embedded server at exit.
        """
        with self._lock:
            if self._exiting:
                return
            self._exiting = True
            default = self._default
            transports = [*self._opened]
            self._opened = []
            embedded, self._embedded = self._embedded, None
            loop = self._loop
        for transport in (default, *transports):
            if transport is not None:
                transport.close()
        if loop is None:
            return
        if embedded is not None:
            embedded.stop(loop)
        loop.stop()
        skip_teardown_collection()


_runtime = Runtime()


def runtime() -> Runtime:
    """The process's runtime."""
    return _runtime


def background_loop() -> BackgroundLoop:
    """The process's background loop, started on first use."""
    return _runtime.background_loop()


def service_address() -> str:
    """The address of the process's service: ``HEADWATER_API_URL``, or the embedded server."""
    return _runtime.service_address()


def default_transport() -> StreamTransport:
    """The stream to the process's service (HEADWATER_API_URL, or the embedded server)."""
    return _runtime.default_transport()


def open_transport(address: str, *, retry_timeout: float | None = None) -> StreamTransport:
    """A stream to another service, beside the default one; closed at exit."""
    return _runtime.open_transport(address, retry_timeout=retry_timeout)


def connect(
    address: str, *, retry_timeout: float | None = None, keepalive_time_ms: int | None = None
) -> EngineConnection:
    """A bare engine stream to ``address`` (for tests and tools; the caller closes it)."""
    return _runtime.connect(
        address, retry_timeout=retry_timeout, keepalive_time_ms=keepalive_time_ms
    )


def transport_for_call(explicit: Transport | None = None) -> Transport:
    """The transport a flow call runs on: the one given, else its parent run's, else the default.

    A subflow thereby reports to the service its parent reports to.
    """
    if explicit is not None:
        return explicit
    parent = _current_flow_run.get()
    if parent is not None and parent.transport is not None:
        return parent.transport
    return _runtime.default_transport()


def reset() -> None:
    """Close the process's streams and stop its embedded server (tests switching services)."""
    _runtime.reset()


def _at_exit() -> None:
    _runtime.shutdown()


def _after_fork_in_child() -> None:
    """A forked child owns none of its parent's threads or sockets: it starts afresh."""
    global _runtime
    _runtime = Runtime()


def _register_exit_hook() -> None:
    """Shut down when the interpreter exits, while thread pools still accept work.

    A plain `atexit` hook runs after `concurrent.futures` has shut every thread pool down, and
    the embedded server does its database work in one, so stopping it (or storing log lines it
    still has) there fails with "cannot schedule new futures after shutdown". CPython's
    threading exit hooks run before that, the latest registered first; registering again
    after something new started is harmless, since `Runtime.shutdown` runs once.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython: the best we can do
        atexit.register(_at_exit)
    else:
        register(_at_exit)


os.register_at_fork(after_in_child=_after_fork_in_child)

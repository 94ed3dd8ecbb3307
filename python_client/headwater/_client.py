"""The process's one engine connection: opened on first use, flushed at exit, reset on fork.

Every engine operation in a process shares one ``EngineService.Connect`` stream (see
`headwater._stream_connection` for why), so the connection is a process-wide singleton. With
``HEADWATER_API_URL`` unset, opening it first starts the embedded server.

The connection's machinery lives in small modules beside this one:

- `headwater._stream_connection`: `EngineConnection`, the caller's side (sync and async);
- `headwater._stream_ops`: one operation, from hand-off to answer;
- `headwater._stream_protocol`: sequence numbers, answer matching, idempotency keys;
- `headwater._stream_reconnect`: reconnect with backoff, resend, give up in time;
- `headwater._transport.channel`: channel options shared with the unary client.

`EngineConnection`, `channel_options` and `MAX_MESSAGE_BYTES` are re-exported here, where
callers have always imported them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from headwater import _loop
from headwater._stream_connection import EngineConnection
from headwater._transport.channel import MAX_MESSAGE_BYTES, channel_options

__all__ = [
    "MAX_MESSAGE_BYTES",
    "EngineConnection",
    "channel_options",
    "close_connection",
    "get_connection",
]

_connection: EngineConnection | None = None
_connection_lock = threading.Lock()


def get_connection() -> EngineConnection:
    """The process's engine connection, opened on first use.

    With ``HEADWATER_API_URL`` unset it first starts the embedded server (in-process, on the
    local database) and connects to that.
    """
    global _connection
    connection = _connection
    if connection is not None:
        return connection
    with _connection_lock:
        if _connection is None:
            from headwater._settings import get_settings

            address = get_settings().api_url
            if address is None:
                from headwater._embedded import ensure_embedded_server

                address = ensure_embedded_server()
            _connection = EngineConnection(address)
            # Registered after the embedded server's own hook, so it runs first: the stream
            # is flushed while the server can still answer.
            _loop.register_exit_hook(_close_at_exit)
        return _connection


def close_connection(timeout: float | None = 5.0) -> None:
    """Flush and close the process's connection, if one is open (atexit, and tests)."""
    global _connection
    with _connection_lock:
        connection, _connection = _connection, None
    if connection is not None:
        connection.close(timeout)


def _close_at_exit() -> None:
    """Ship buffered run logs, flush, and close; the closed connection stays the singleton.

    Keeping it means a late caller (another exit hook) gets clear "connection closed" errors
    and an instant `flush`, instead of a new connection (and a new embedded server) at exit.
    """
    logging_module = sys.modules.get("headwater._logging")
    flush_logs = getattr(logging_module, "flush_logs", None)
    if flush_logs is not None:
        with contextlib.suppress(Exception):
            flush_logs(wait=False)
    connection = _connection
    if connection is not None:
        connection.close()


def _forget_after_fork() -> None:
    """A forked child cannot use its parent's stream; it opens its own on first use."""
    global _connection, _connection_lock
    _connection = None
    _connection_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

"""The gRPC channel settings both Headwater clients share (the engine stream and the unary API).

One place, so the engine's stream (`headwater._stream_connection`) and the people-facing client
(`headwater.client`) agree on message limits and on how fast they notice a restarted server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_MESSAGE_BYTES", "channel_options"]

#: The largest message the client sends or accepts. The server's default limit is 4 MiB, so
#: results bigger than that belong in result storage, not inline.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def channel_options(keepalive_time_ms: int) -> list[tuple[str, Any]]:
    """The channel options every Headwater client uses.

    Keepalive pings keep idle streams (long waits, watches) alive through proxies and detect a
    dead peer; the server permits them. The reconnect backoff is capped low because a local
    server restarts in about a second, and gRPC's default cap of two minutes would keep the
    channel failing long after the server is back.
    """
    return [
        ("grpc.keepalive_time_ms", keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]

"""What every Headwater channel shares: the service addresses it accepts and its options.

One place, so the engine's stream (`headwater._transport.stream`) and the people-facing clients
(`headwater.client`) accept the same addresses (refusing one that can never work before
anything dials it) and agree on message limits and on how fast they notice a restarted server.
This module imports no gRPC: the settings check ``HEADWATER_API_URL`` with `parse_target`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = [
    "ADDRESS_FORMS",
    "MAX_MESSAGE_BYTES",
    "channel_options",
    "checked_target",
    "parse_target",
]

#: The largest message the client sends or accepts. The server's default limit is 4 MiB, so
#: results bigger than that belong in result storage, not inline.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def channel_options(keepalive_time_ms: int) -> list[tuple[str, Any]]:
    """The channel options every Headwater client uses.

    Keepalive pings keep idle streams (long waits, watches) alive through proxies and detect a
    dead peer; the server permits them. The reconnect backoff is capped low because a local
    server restarts in about a second, and gRPC's default cap of two minutes would keep the
    channel failing long after the server is back. The connect timeout stays gRPC's 20 s:
    gRPC takes it from ``grpc.min_reconnect_backoff_ms``, and at 100 ms a busy server that took
    longer to answer the HTTP/2 handshake failed the call ("connection attempt timed out
    before receiving SETTINGS frame"). A refused connection still fails at once.
    """
    return [
        ("grpc.keepalive_time_ms", keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


#: The forms a service address may take, for error messages.
ADDRESS_FORMS = (
    "host:port (e.g. 127.0.0.1:4200 or headwater.internal:4200), [ipv6]:port (e.g. [::1]:4200), "
    "unix:/path/to/socket or unix-abstract:name"
)

# Schemes people paste out of habit (Prefect's PREFECT_API_URL is an http URL). A URL that is
# only a scheme and host:port is reduced to the gRPC target it names; anything more is refused.
_URL_SCHEMES = ("grpc://", "http://", "https://")
_HOST_PATTERN = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def parse_target(text: str) -> str:
    """The gRPC target a service address names, checked before anything dials it.

    Accepted: ``host:port``, ``[ipv6]:port``, ``unix:/path``, ``unix://path``,
    ``unix-abstract:name``, and ``http(s)://`` or ``grpc://`` followed by ``host:port`` (the
    scheme is dropped: Headwater speaks gRPC, whatever the scheme says).

    Raises:
        ValueError: The address can never work; the message says what form is expected.
    """
    target = text.strip()
    lowered = target.lower()
    if lowered.startswith(("unix:", "unix-abstract:")):
        if not target.partition(":")[2].strip("/"):
            raise ValueError(f"must name a socket after the scheme ({ADDRESS_FORMS})")
        return target
    for scheme in _URL_SCHEMES:
        if lowered.startswith(scheme):
            rest = target[len(scheme) :]
            address, _, path = rest.partition("/")
            if path.strip("/") or "?" in rest or "#" in rest:
                raise ValueError(
                    f"is a URL with a path; Headwater speaks gRPC at host:port, not HTTP, so "
                    f"give only the server's host and port (e.g. {_example(address)})"
                )
            target = address
            break
    else:
        if "://" in target:
            raise ValueError(f"has a scheme Headwater does not speak; use {ADDRESS_FORMS}")
    return _host_port(target)


def checked_target(address: str) -> str:
    """`parse_target` for an address passed in code (a client's, a transport's).

    Raises:
        ValueError: The address can never work, in a sentence that quotes it.
    """
    try:
        return parse_target(address)
    except ValueError as exc:
        raise ValueError(f"The service address {address!r} {exc}.") from None


def _host_port(target: str) -> str:
    if target.startswith("["):
        host, bracket, port = target[1:].partition("]")
        if not bracket or not port.startswith(":"):
            raise ValueError(f"must be [ipv6]:port ({ADDRESS_FORMS})")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"has {host!r} in brackets, which is not an IPv6 address") from None
        _port(port[1:])
        return target
    host, colon, port = target.rpartition(":")
    if not colon:
        if _HOST_PATTERN.match(target):
            raise ValueError(f"has no port; Headwater needs one, e.g. {target}:4200")
        raise ValueError(f"is not an address; expected {ADDRESS_FORMS}")
    if ":" in host:
        raise ValueError(f"looks like an IPv6 address; put it in brackets: [{host}]:{port}")
    if not _HOST_PATTERN.match(host):
        raise ValueError(f"does not start with a host name or IP address; expected {ADDRESS_FORMS}")
    _port(port)
    return target


def _port(text: str) -> None:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"has port {text!r}; a port is a number from 1 to 65535")


def _example(address: str) -> str:
    return address if address and ":" in address else "127.0.0.1:4200"

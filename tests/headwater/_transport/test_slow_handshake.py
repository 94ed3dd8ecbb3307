"""A service that is slow to answer the HTTP/2 handshake (a loaded machine) is still reached.

The SDK once set ``grpc.min_reconnect_backoff_ms`` to 100 ms, which gRPC also uses as the
connect timeout: a server that took longer to send its SETTINGS frame failed the call with
"connection attempt timed out before receiving SETTINGS frame" (seen in CI under load). A real
server behind a real TCP relay that holds each new connection for half a second reproduces it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from headwater.client import HeadwaterClient

HOLD_SECONDS = 0.5


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _relay(listener: socket.socket, upstream: tuple[str, int]) -> None:
    while True:
        try:
            downstream, _ = listener.accept()
        except OSError:
            return  # the listener was closed: the test is over
        time.sleep(HOLD_SECONDS)  # nothing reaches the client before this: no SETTINGS frame
        try:
            server = socket.create_connection(upstream)
        except OSError:
            downstream.close()
            continue
        for source, target in ((downstream, server), (server, downstream)):
            threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


@pytest.fixture
def slow_address(sqlite_server: Any) -> Iterator[str]:
    host, port = sqlite_server.address.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_relay, args=(listener, (host, int(port))), daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.integration
def test_a_server_slow_to_answer_the_handshake_is_still_reached(slow_address: str) -> None:
    with HeadwaterClient(address=slow_address) as client:
        assert isinstance(client.list_flows(), list)

"""A service that is slow to answer the HTTP/2 handshake (a loaded machine) is still reached.

The SDK once set ``grpc.min_reconnect_backoff_ms`` to 100 ms, which gRPC also uses as the
connect timeout: a server that took longer to send its SETTINGS frame failed the call with
"connection attempt timed out before receiving SETTINGS frame" (seen in CI under load). A real
server behind a real TCP relay that holds each new connection for half a second reproduces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from headwater.client import HeadwaterClient
from tcp_proxy import PausableProxy

HOLD_SECONDS = 0.5


@pytest.fixture
def slow_address(sqlite_server: Any) -> Iterator[str]:
    # Nothing reaches the client before the hold ends: no SETTINGS frame for half a second.
    proxy = PausableProxy(sqlite_server.address, hold_seconds=HOLD_SECONDS).start()
    try:
        yield proxy.address
    finally:
        proxy.close()


@pytest.mark.integration
def test_a_server_slow_to_answer_the_handshake_is_still_reached(slow_address: str) -> None:
    with HeadwaterClient(address=slow_address) as client:
        assert isinstance(client.list_flows(), list)

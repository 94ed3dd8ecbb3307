"""Fixtures shared by the SDK tests: one in-process server per module, a connection
and a unary client to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from headwater._transport.runtime import connect
from headwater._transport.stream.connection import EngineConnection
from headwater.client import HeadwaterClient
from stream_support import InProcessServer


@pytest.fixture(scope="module")
def inproc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    home = tmp_path_factory.mktemp("client-home")
    server = InProcessServer(f"sqlite:///{home / 'headwater.db'}").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def connection(inproc: InProcessServer) -> Iterator[EngineConnection]:
    conn = connect(inproc.address, retry_timeout=10, keepalive_time_ms=20000)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def client(inproc: InProcessServer) -> Iterator[HeadwaterClient]:
    with HeadwaterClient(inproc.address) as unary:
        yield unary

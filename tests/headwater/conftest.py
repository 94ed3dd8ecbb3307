"""Fixtures shared by the SDK tests: one in-process server per module, a connection
and a unary client to it, and the embedded service in a home of each module's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import Reader, sdk_target
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


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    """The embedded service in a home of this module's own, and a reader of what it stored."""
    home: Path = tmp_path_factory.mktemp("home")
    with sdk_target(home):
        reader = Reader()
        yield reader
        reader.close()

"""A server that cannot start says so in one sentence-shaped line a person can act on.

The subprocess side (exit code 1, no traceback, from both commands) is in
tests/integration/test_server_cli.py; here the messages themselves, in-process.
"""

from __future__ import annotations

import grpc.aio
import pytest
from headwater_server.server import ServerStartError, _bind, start_server


async def test_a_busy_port_found_by_grpc_itself_reads_cleanly() -> None:
    # Past the early check (a race: the port was taken between the check and the bind).
    first = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
    second = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
    port = first.add_insecure_port("127.0.0.1:0")
    await first.start()
    try:
        with pytest.raises(ServerStartError) as caught:
            _bind(second, f"127.0.0.1:{port}")
    finally:
        await first.stop(None)
        await second.stop(None)
    message = str(caught.value)
    assert message.startswith(f"Cannot listen on 127.0.0.1:{port}: ")
    assert "another port" in message
    assert ".." not in message and "GRPC_VERBOSITY" not in message and "\n" not in message


async def test_a_busy_port_is_found_before_the_database_is_opened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = await start_server("127.0.0.1:0", f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with pytest.raises(ServerStartError, match="the port is already in use"):
            await start_server(first.address, f"sqlite:///{tmp_path / 'b.db'}")
        assert not (tmp_path / "b.db").exists()
    finally:
        await first.stop(1)


async def test_an_unreachable_database_is_one_line_without_sqlalchemy_noise() -> None:
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:1/nowhere"
    with pytest.raises(ServerStartError) as caught:
        await start_server("127.0.0.1:0", url)
    message = str(caught.value)
    assert message.startswith("Cannot open the database postgresql+psycopg://postgres:***@")
    assert "secret" not in message and "sqlalche.me" not in message and "\n" not in message
    assert "?." not in message and ".." not in message
    assert message.endswith("and that the database server is up.")

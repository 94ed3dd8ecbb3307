"""Shared fixtures: real Headwater servers as subprocesses, and a fresh PostgreSQL database.

Nothing here is mocked. A server fixture runs the real server command (``server_command`` in
tests/server_harness.py, the one place to change it) on a free port with its own HEADWATER_HOME,
waits until gRPC health answers SERVING, and stops it with SIGTERM at the end, so every
integration test goes through the same start, serve and shutdown paths users do.

Integration tests that should run on both databases take the ``server`` fixture (module scoped,
parametrised over SQLite and PostgreSQL; the PostgreSQL parameter carries
``pytest.mark.postgres``). Tests that need a server of their own (restarts, two servers on one
database) use ``make_server``; parametrise them with ``server_harness.DATABASES`` and turn the
parameter into a URL with ``database_url_for``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_harness import (
    DATABASES,
    ServerFactory,
    ServerProcess,
    database_url_for,
    throwaway_postgres_database,
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end."""
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers of this test's own: ``make_server(database_url=None, home=None, env=None)``.

    ``env`` adds variables to the server's environment (server settings such as
    ``HEADWATER_LATE_RUN_AFTER_SECONDS``).
    """
    started: list[ServerProcess] = []

    def start(
        database_url: str | None = None,
        home: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        server = ServerProcess(home or tmp_path / f"home{len(started)}", database_url, env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module", params=DATABASES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per test module and database (SQLite, then PostgreSQL)."""
    url = database_url_for(request.param, request)
    process = ServerProcess(tmp_path_factory.mktemp("headwater-home"), url).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module on SQLite only, for tests where the database does not matter."""
    process = ServerProcess(tmp_path_factory.mktemp("headwater-home")).start()
    yield process
    process.stop()

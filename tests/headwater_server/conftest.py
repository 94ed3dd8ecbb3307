"""Database fixtures for server-side tests: real SQLite files and real PostgreSQL databases.

``database_url`` is parametrised over both backends, so every test that uses it runs twice; the
PostgreSQL half is marked ``postgres`` and gets a throwaway database of its own (created and
dropped by ``server_harness.throwaway_postgres_database``, the same code behind the session-wide
``postgres_url`` in tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_harness import DATABASES, throwaway_postgres_database
from sync_application import SyncApplication


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a fresh SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'headwater.db'}"


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A URL for a brand-new PostgreSQL database, dropped when the test ends.

    Per test (unlike the session's ``postgres_url``): storage tests count rows and need a
    database nobody else has written to.
    """
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture
def database(database_url: str) -> Iterator[object]:
    """An open ``Database`` on a fresh database (migrated), closed after the test."""
    from headwater_server.storage.database import Database

    db = Database.open(database_url)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def repository(database: object) -> object:
    """The ``Repository`` of the ``database`` fixture."""
    return database.repository  # type: ignore[attr-defined]


@pytest.fixture
def application(database: object) -> SyncApplication:
    """The application layer over the ``database`` fixture, callable synchronously."""
    return SyncApplication(database)

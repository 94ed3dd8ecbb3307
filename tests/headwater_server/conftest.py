"""Database fixtures for server-side tests: real SQLite files and real PostgreSQL databases.

``database_url`` is parametrised over both backends, so every test that uses it runs twice; the
PostgreSQL half is marked ``postgres`` and gets a throwaway database (created here, dropped
with FORCE afterwards) on the local server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SQLALCHEMY_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a fresh SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'headwater.db'}"


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A URL for a brand-new PostgreSQL database, dropped when the test ends."""
    import psycopg

    name = f"hw_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); run scripts/ensure-postgres "
            f"or deselect with -m 'not postgres'."
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SQLALCHEMY_BASE}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
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

"""Bring a database to the current schema at start-up, cheaply when it already is.

Cold start matters (the embedded server starts with the first flow call), and importing Alembic
costs about 100 ms, so :func:`ensure_schema` first reads ``alembic_version`` with a plain query
and returns at once when it names :data:`HEAD_REVISION`. Only a fresh or older database pays for
Alembic, which then runs inside one transaction that holds a lock (PostgreSQL: a transaction
advisory lock; SQLite: ``BEGIN IMMEDIATE``), so two processes starting together on one new
database migrate it once: the second waits, re-reads the revision and finds it current.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from headwater_server.storage.engine import WRITE_OPTION

# The newest revision in storage/migrations/versions. A test checks it against Alembic's own
# view of the scripts, so forgetting to bump it fails the suite rather than every start-up.
HEAD_REVISION = "0001"

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every Headwater process.
_PG_ADVISORY_LOCK_KEY = 0x68656164776174  # "headwat"

_SQLITE_LOCK_ATTEMPTS = 20


def current_revision(conn: Connection) -> str | None:
    """The revision stored in ``alembic_version``, or None for a database without one."""
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def ensure_schema(engine: Engine) -> bool:
    """Make sure the database behind ``engine`` is at :data:`HEAD_REVISION`.

    Returns:
        True when migrations ran in this call, False when the schema was already current.
    """
    with engine.connect() as conn:
        revision = current_revision(conn)
        conn.rollback()
    if revision == HEAD_REVISION:
        return False
    return _migrate_locked(engine)


def _migrate_locked(engine: Engine) -> bool:
    """Run ``alembic upgrade head`` inside a locked transaction; re-check under the lock."""
    if engine.dialect.name == "sqlite":
        for attempt in range(_SQLITE_LOCK_ATTEMPTS):
            try:
                return _migrate_in_transaction(engine)
            except OperationalError as exc:
                # busy_timeout already waited; a long migration elsewhere may still hold the
                # lock, so try again rather than fail the start-up.
                if "locked" not in str(exc) or attempt == _SQLITE_LOCK_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
    return _migrate_in_transaction(engine)


def _migrate_in_transaction(engine: Engine) -> bool:
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_ADVISORY_LOCK_KEY}
                )
            if _revision_under_lock(conn) == HEAD_REVISION:
                return False
            _run_alembic(conn)
    return True


def _revision_under_lock(conn: Connection) -> str | None:
    """Read the revision without a failing statement (a PostgreSQL error would end the txn)."""
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(connection: Connection | None = None) -> object:
    """An Alembic ``Config`` built in code (no alembic.ini), bound to ``connection`` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run_alembic(conn: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), "head")  # type: ignore[arg-type]


def script_head() -> str | None:
    """The head revision according to the migration scripts (imports Alembic; for tests)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()  # type: ignore[arg-type]

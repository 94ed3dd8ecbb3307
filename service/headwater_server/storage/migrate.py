"""Bring a database to the current schema at start-up, cheaply whether it is new or current.

Cold start matters (the embedded server starts with the first flow call), and importing and
running Alembic costs 150-250 ms here, so Alembic only runs when a database really needs
migrating:

- current database: :func:`ensure_schema` reads ``alembic_version`` with a plain query and
  returns at once when it names :data:`HEAD_REVISION` (Alembic is never imported);
- new database (none of Headwater's tables): the schema is created from the SQLAlchemy Core
  metadata in ``schema.py`` and ``alembic_version`` is stamped with :data:`HEAD_REVISION`, in one
  transaction. This is Alembic's own advice for new databases ("create_all, then stamp head");
  a test checks that the result is identical to ``alembic upgrade head`` and that later
  migrations apply on top of it;
- older database: ``alembic upgrade head``.

The work runs inside one transaction that holds a lock (PostgreSQL: a transaction advisory lock;
SQLite: ``BEGIN IMMEDIATE``), so two processes starting together on one new database create it
once: the second waits, re-reads the revision under the lock and finds it current.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from headwater_server.storage.engine import WRITE_OPTION

# The newest revision in storage/migrations/versions. A test checks it against Alembic's own
# view of the scripts, so forgetting to bump it fails the suite rather than every start-up.
HEAD_REVISION = "0024"

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Alembic's bookkeeping table, as Alembic itself creates it (name, column, constraint name).
VERSION_TABLE = "alembic_version"
_VERSION_TABLE_PK = "alembic_version_pkc"

# Any constant works; it only has to be the same in every Headwater process.
_PG_ADVISORY_LOCK_KEY = 0x68656164776174  # "headwat"

_SQLITE_LOCK_ATTEMPTS = 20


def current_revision(conn: Connection) -> str | None:
    """The revision stored in ``alembic_version``, or None for a database without one."""
    try:
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except DBAPIError:
        return None


def ensure_schema(engine: Engine) -> bool:
    """Make sure the database behind ``engine`` is at :data:`HEAD_REVISION`.

    Returns:
        True when this call created or migrated the schema, False when it was already current.
    """
    with engine.connect() as conn:
        revision = current_revision(conn)
        conn.rollback()
    if revision == HEAD_REVISION:
        return False
    return _migrate_locked(engine)


def _migrate_locked(engine: Engine) -> bool:
    """Create or migrate the schema inside a locked transaction; re-check under the lock."""
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
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(conn, on=False)
        try:
            return _migrate_locked_connection(conn)
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, on=True)


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    """Turn SQLite's foreign key enforcement off for a migration, and back on after it.

    A batch migration rebuilds a table (revision 0003 rebuilds flow_runs) by copying it and
    dropping the old one; with foreign keys on, SQLite's DROP TABLE first deletes every row, and
    ON DELETE CASCADE then empties the child tables: every run's state history was lost. The
    pragma is a no-op inside a transaction, so it is sent on the driver's connection (which is
    in autocommit mode) before BEGIN and after COMMIT.
    """
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _migrate_locked_connection(conn: Connection) -> bool:
    """Create or migrate the schema in one transaction on ``conn``, holding the lock."""
    from sqlalchemy import inspect

    from headwater_server.storage.schema import metadata

    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_ADVISORY_LOCK_KEY})
        # Read under the lock, without a failing statement (a PostgreSQL error would end
        # the transaction).
        tables = set(inspect(conn).get_table_names())
        if VERSION_TABLE in tables:
            revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            if revision == HEAD_REVISION:
                return False
            _run_alembic(conn)
        elif tables.isdisjoint(metadata.tables):
            create_at_head(conn)
        else:
            # Some of Headwater's tables but no revision: not a database this code made.
            # Alembic then fails on the first table that exists and says which one.
            _run_alembic(conn)
    return True


def create_at_head(conn: Connection) -> None:
    """Create every table of ``schema.py`` and record :data:`HEAD_REVISION`, on ``conn``.

    Only for a database without Headwater's tables, inside the caller's transaction: both
    databases run DDL transactionally, so a crash leaves either nothing or the whole schema.
    """
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

    from headwater_server.storage.schema import metadata

    metadata.create_all(conn, checkfirst=False)
    version = Table(
        VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=_VERSION_TABLE_PK),
    )
    version.create(conn, checkfirst=False)
    conn.execute(version.insert().values(version_num=HEAD_REVISION))


def alembic_config(
    connection: Connection | None = None, script_location: Path | None = None
) -> object:
    """An Alembic ``Config`` built in code (no alembic.ini), bound to ``connection`` if given.

    Args:
        connection: The connection (inside its transaction) the migrations run on.
        script_location: Another migrations directory (tests); default: Headwater's own.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location or MIGRATIONS_DIR))
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

"""SQLAlchemy engines for the two supported databases, tuned for the orchestration hot path.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL`` (a commit is an
append to the WAL, about 13 us here, and survives a process crash), a busy timeout so a second
process waits instead of failing, and foreign keys on. Transactions are begun by SQLAlchemy, not
by the sqlite3 driver (the documented pysqlite recipe): read transactions emit ``BEGIN``, write
transactions ``BEGIN IMMEDIATE`` so the write lock is taken before the run is read, which is what
makes "read the run, decide, write" race-free between two engines or two servers.

PostgreSQL uses psycopg 3 (``postgresql+psycopg://``); the repository locks the run row with
``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

# Execution option a Connection carries when its next transaction writes.
WRITE_OPTION = "headwater_write"

SQLITE_BUSY_TIMEOUT_MS = 5000
# Pages the WAL may grow to before a commit checkpoints it itself. ``Database`` checkpoints in a
# background thread every second, so commits on the hot path normally never pay for the
# checkpoint's fsyncs (several ms here); this is only the safety net that bounds the WAL.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10000


def dialect_of(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"`` for a database URL; anything else is refused."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(
            f"Unsupported database URL '{url}': Headwater runs on SQLite "
            f"('sqlite:///path/to/headwater.db') or PostgreSQL "
            f"('postgresql+psycopg://user@host:5432/db')."
        )
    return name


def normalize_url(url: str) -> str:
    """Prefer psycopg 3 for bare ``postgresql://`` URLs (psycopg2 is not installed)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_database_engine(url: str, *, pool_size: int = 8) -> Engine:
    """Build the engine for ``url`` with the connection settings described above.

    Args:
        url: a SQLAlchemy URL, ``sqlite:///...`` or ``postgresql+psycopg://...``.
        pool_size: connections to keep for PostgreSQL (match the executor's threads).
    """
    url = normalize_url(url)
    if dialect_of(url) == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    # The server's executor runs SQLite work on one thread, but migrations and tests may use
    # another; each connection is used by one thread at a time.
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if not parsed.database or parsed.database == ":memory:":
        # One in-memory database lives in one connection: share it (tests, throwaway use).
        from sqlalchemy.pool import StaticPool

        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args=connect_args, pool_size=2, max_overflow=4)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; SQLAlchemy's "begin" hook emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL on a fresh file may wait for another process.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
            # Savepoints' statement journals (every write of a group is one) and temporary
            # tables in memory, not in a temporary file opened, written and unlinked per
            # transaction: about one file's system calls per task run, measured with strace.
            cursor.execute("PRAGMA temp_store=MEMORY")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine

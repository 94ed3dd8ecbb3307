"""The background WAL checkpointer keeps SQLite's WAL from growing while commits go on."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from headwater_server.storage.checkpoint import WalCheckpointer


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer may checkpoint
    conn.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
    return conn


def _write(conn: sqlite3.Connection, commits: int) -> None:
    for _ in range(commits):
        conn.execute("INSERT INTO t VALUES (randomblob(2000))")


def test_wal_stops_growing_once_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    wal = Path(f"{path}-wal")
    writer = _writer(path)
    _write(writer, 200)
    size_before = wal.stat().st_size

    checkpointer = WalCheckpointer(str(path), interval=0.05)
    checkpointer.start()
    try:
        time.sleep(0.5)
        # The WAL was copied into the database, so new commits restart it from the beginning
        # instead of appending: the file does not grow.
        _write(writer, 200)
        assert wal.stat().st_size <= size_before
    finally:
        checkpointer.stop()
        writer.close()


def test_without_checkpoints_the_wal_grows(tmp_path: Path) -> None:
    """The control for the test above: same writes, no checkpointer."""
    path = tmp_path / "db.sqlite"
    wal = Path(f"{path}-wal")
    writer = _writer(path)
    _write(writer, 200)
    size_before = wal.stat().st_size
    _write(writer, 200)
    assert wal.stat().st_size > size_before * 1.5
    writer.close()


def test_stop_truncates_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    wal = Path(f"{path}-wal")
    writer = _writer(path)
    _write(writer, 50)
    writer.close()  # the last connection closing may checkpoint too; reopen to hold the WAL
    writer = _writer(path)
    _write(writer, 50)
    checkpointer = WalCheckpointer(str(path), interval=60)
    checkpointer.start()
    writer.close()
    checkpointer.stop()
    assert not wal.exists() or wal.stat().st_size == 0

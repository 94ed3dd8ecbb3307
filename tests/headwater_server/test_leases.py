"""Worker leases in storage and in the heartbeat operation, on real SQLite and PostgreSQL.

A heartbeat counts from when the server heard it, not from when its write ran, and it is
written even when its caller stopped waiting for the answer. On a busy server (two workers
starting a hundred run processes each on two cores) a heartbeat's write waited seconds behind
other database calls, the worker's call gave up, the write was dropped, the lease ran out
for a worker that kept calling, and another worker claimed and started its runs again.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

from headwater.v1 import workers_pb2
from headwater_server.application import workers as worker_operations
from headwater_server.application.backend import Backend
from headwater_server.events import EventHub
from headwater_server.storage.convert import now_us
from headwater_server.storage.schema import workers
from sqlalchemy import select

LEASE_US = 10_000_000
# Generous: the machine running the tests may be busy. Nothing here measures speed.
SETTLE_SECONDS = 30.0


def _why(name: str) -> str:
    return f"Rescheduled: {name} went quiet."


def _heartbeat_time(database: Any, worker_id: str) -> int | None:
    with database.engine.connect() as conn:
        return conn.execute(
            select(workers.c.last_heartbeat_time).where(workers.c.id == worker_id)
        ).scalar()


def test_a_heartbeat_written_late_keeps_the_later_time_a_row_already_has(repository: Any) -> None:
    worker_id = str(uuid.uuid4())
    heard = now_us()
    repository.worker_seen(worker_id, "w", heard)
    # An earlier heartbeat whose write waited behind this one's does not move the time back.
    repository.worker_seen(worker_id, "w", heard - LEASE_US)
    assert repository.release_dead_workers(LEASE_US, _why, decided_us=heard + LEASE_US) == []
    (dead,) = repository.release_dead_workers(LEASE_US, _why, decided_us=heard + LEASE_US + 1)
    assert (dead.id, dead.last_heartbeat_time) == (worker_id, heard)


def test_a_sweep_judges_a_lease_against_when_it_was_decided(repository: Any) -> None:
    worker_id = str(uuid.uuid4())
    heard = now_us() - 2 * LEASE_US  # long ago by the clock, when the sweep runs
    repository.worker_seen(worker_id, "w", heard)
    # Decided within the lease of the heartbeat: it keeps the worker, however late it runs.
    assert repository.release_dead_workers(LEASE_US, _why, decided_us=heard + LEASE_US) == []
    assert [w.id for w in repository.release_dead_workers(LEASE_US, _why)] == [worker_id]


def test_a_heartbeat_heard_while_the_database_is_busy_counts_from_then_even_if_its_caller_gives_up(
    database: Any,
) -> None:
    worker_id = str(uuid.uuid4())
    request = workers_pb2.HeartbeatRequest(worker_name="busy", worker_id=worker_id)

    async def scenario() -> tuple[int, int]:
        backend = Backend(db=database, hub=EventHub(_no_polling))
        busy = threading.Event()
        release = threading.Event()

        def hold_the_database() -> None:
            busy.set()
            release.wait()

        held = asyncio.ensure_future(database.run(hold_the_database))
        await asyncio.to_thread(busy.wait)
        before = now_us()
        call = asyncio.create_task(worker_operations.heartbeat(backend, request))
        for _ in range(5):  # the operation reaches its first database call and waits there
            await asyncio.sleep(0)
        after = now_us()
        call.cancel()  # the caller's deadline passed while the write waited
        release.set()
        await held
        # Queued behind the write (SQLite's one writer); PostgreSQL's pool may still be at it.
        await database.run(lambda: None)
        deadline = time.monotonic() + SETTLE_SECONDS
        while _heartbeat_time(database, worker_id) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return before, after

    before, after = asyncio.run(scenario())
    heard = _heartbeat_time(database, worker_id)
    assert heard is not None and before <= heard <= after


async def _no_polling(flow_run_id: str) -> int:
    raise AssertionError("nothing waits in these tests")

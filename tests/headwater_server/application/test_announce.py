"""How committed task run events reach the event hub (`Backend`'s announcer).

Storage announces them on the database thread; the hub lives on the loop. A burst of
transactions must wake the hub's waiters without one loop wake-up each, and nothing announced
may be lost; freed concurrency slots go at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from headwater_server.application.backend import Backend
from headwater_server.events import EventHub
from headwater_server.storage._concurrency import SLOTS_FREED
from headwater_server.storage.database import Database

_NEVER = 3600.0  # a poll interval no test waits for: only an announcement wakes a waiter


class _CountingHub(EventHub):
    """The real hub, counting how often task events and freed slots are handed to it."""

    def __init__(self) -> None:
        super().__init__(self._read, poll_interval=_NEVER)
        self.deliveries = 0
        self.freed: list[str] = []

    @staticmethod
    async def _read(flow_run_id: str) -> int:
        return -1

    def notify_task_events(self, newest: dict[str, int]) -> None:
        self.deliveries += 1
        super().notify_task_events(newest)

    def slots_freed(self, keys: Iterable[str]) -> None:
        self.freed.extend(keys)
        super().slots_freed(keys)


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    database = Database.open(f"sqlite:///{tmp_path / 'announce.db'}")
    try:
        yield Backend(db=database, hub=_CountingHub())
    finally:
        database.close()


def _announce_from_another_thread(backend: Backend, batches: list[list[tuple[str, int]]]) -> None:
    def announce_all() -> None:
        for events in batches:
            backend.db.repository.announce(events)

    thread = threading.Thread(target=announce_all)
    thread.start()
    thread.join()


async def test_a_burst_of_commits_wakes_the_waiters_with_the_newest_sequence(
    backend: Backend,
) -> None:
    hub = backend.hub
    assert isinstance(hub, _CountingHub)
    waiting = asyncio.ensure_future(hub.wait_for_change("run-a", 498, timeout=30))
    await asyncio.sleep(0)  # the waiter is registered
    _announce_from_another_thread(
        backend, [[("run-a", sequence), ("run-b", sequence)] for sequence in range(500)]
    )
    assert await waiting  # woken by the announcement of 499 > 498, not by a poll or timeout
    # A waiter arriving later sees what was announced without waiting.
    assert await hub.wait_for_change("run-b", 498, timeout=0)
    # 500 transactions, handed over in a few deliveries, not one loop wake-up each.
    assert 1 <= hub.deliveries < 50


async def test_events_announced_after_a_quiet_spell_are_delivered_too(backend: Backend) -> None:
    hub = backend.hub
    assert isinstance(hub, _CountingHub)
    _announce_from_another_thread(backend, [[("run-c", 1)]])
    assert await hub.wait_for_change("run-c", 0, timeout=30)
    await asyncio.sleep(0.05)  # the delivery timer has gone quiet and stopped
    waiting = asyncio.ensure_future(hub.wait_for_change("run-c", 1, timeout=30))
    await asyncio.sleep(0)
    _announce_from_another_thread(backend, [[("run-c", 2)]])
    assert await waiting


async def test_freed_slots_are_handed_over_at_once_among_task_events(backend: Backend) -> None:
    hub = backend.hub
    assert isinstance(hub, _CountingHub)
    _announce_from_another_thread(backend, [[("run-d", 1)]])
    await asyncio.sleep(0)  # the first delivery starts the timer
    _announce_from_another_thread(
        backend, [[("run-d", 2), (SLOTS_FREED + "tag:db", 0)], [(SLOTS_FREED + "tag:api", 0)]]
    )
    for _ in range(100):
        if len(hub.freed) == 2:
            break
        await asyncio.sleep(0.001)
    assert sorted(hub.freed) == ["tag:api", "tag:db"]
    assert await hub.wait_for_change("run-d", 1, timeout=30)

"""LISTEN/NOTIFY between two notifiers on a real PostgreSQL database, and the hub's relay.

Each notifier stands for one server process: what one is told (by its hub) the other delivers
to its own hub, never back to the sender, however many changes a batch carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest
from headwater_server.events import EventHub
from headwater_server.storage.notify import PostgresNotifier, connect_kwargs, deliver, payloads
from sqlalchemy import create_engine

RUN = "0b1c2d3e-0000-4000-8000-000000000001"


class Recorder:
    """A hub stand-in that records what was delivered to it."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[int, bool]] = {}
        self.gone: list[str] = []
        self.slots: list[str] = []
        self.everything = 0
        self.changed = asyncio.Event()

    def run_changed(self, flow_run_id: str, sequence: int, own_state: bool) -> None:
        self.runs[flow_run_id] = (sequence, own_state)
        self.changed.set()

    def run_gone(self, flow_run_id: str) -> None:
        self.gone.append(flow_run_id)
        self.changed.set()

    def slots_freed(self, keys: Iterable[str]) -> None:
        self.slots.extend(keys)
        self.changed.set()

    def everything_changed(self) -> None:
        self.everything += 1
        self.changed.set()

    async def until(self, done: object, timeout: float = 10) -> None:
        async def wait() -> None:
            while not done():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


def _run_id(index: int) -> str:
    return f"0b1c2d3e-0000-4000-8000-{index:012d}"


def test_a_batch_round_trips_through_its_payload_text() -> None:
    got = Recorder()
    lines = [f"r {RUN} 7", f"t {_run_id(2)} 3", f"g {_run_id(3)}", 's "tag:a b\\nc"', "*"]
    [text] = payloads("me", lines)
    deliver(text, "someone else", got)
    assert got.runs == {RUN: (7, True), _run_id(2): (3, False)}
    assert got.gone == [_run_id(3)]
    assert got.slots == ["tag:a b\nc"]
    assert got.everything == 1


def test_a_server_ignores_its_own_notifications_and_malformed_lines() -> None:
    got = Recorder()
    [text] = payloads("me", [f"r {RUN} 7"])
    deliver(text, "me", got)
    assert got.runs == {}
    deliver(f"other\nr {RUN} seven\nq what\nr {RUN} 8", "me", got)
    assert got.runs == {RUN: (8, True)}


def test_a_long_batch_is_split_under_the_payload_limit() -> None:
    lines = [f"r {_run_id(i)} {i}" for i in range(1000)]
    texts = payloads("me", lines)
    assert len(texts) > 1
    assert all(len(text.encode()) < 8000 for text in texts)
    got = Recorder()
    for text in texts:
        deliver(text, "you", got)
    assert got.runs == {_run_id(i): (i, True) for i in range(1000)}


@pytest.fixture
async def pair(postgres_database_url: str) -> AsyncIterator[tuple[PostgresNotifier, Recorder]]:
    """A sending notifier and what a second one, on the same database, delivered."""
    engine = create_engine(postgres_database_url)
    kwargs = connect_kwargs(engine)
    engine.dispose()
    received = Recorder()
    sender = PostgresNotifier(kwargs, Recorder())
    listener = PostgresNotifier(kwargs, received)
    await sender.start()
    await listener.start()
    assert listener.listening.is_set()
    yield sender, received
    await sender.stop()
    await listener.stop()


@pytest.mark.postgres
async def test_changes_told_to_one_server_reach_the_other(
    pair: tuple[PostgresNotifier, Recorder],
) -> None:
    sender, received = pair
    sender.run_changed(RUN, 4, own_state=False)
    sender.run_changed(RUN, 5, own_state=True)
    sender.slots_freed(["deployment:d1"])
    sender.run_gone(_run_id(9))
    await received.until(lambda: received.gone)
    assert received.runs == {RUN: (5, True)}  # the newest sequence covers the task event
    assert received.slots == ["deployment:d1"]
    assert received.gone == [_run_id(9)]


@pytest.mark.postgres
async def test_a_thousand_changes_at_once_all_arrive(
    pair: tuple[PostgresNotifier, Recorder],
) -> None:
    sender, received = pair
    for i in range(1000):
        sender.run_changed(_run_id(i), i, own_state=True)
    await received.until(lambda: len(received.runs) == 1000)
    assert received.runs == {_run_id(i): (i, True) for i in range(1000)}


async def test_the_hub_relays_its_own_changes_but_not_its_peers() -> None:
    async def read(flow_run_id: str) -> int:
        return 0

    hub = EventHub(read, poll_interval=10)
    sent = Recorder()
    hub.relay = sent
    waiter = asyncio.create_task(hub.wait_for_change(RUN, 1, timeout=30))
    slot = asyncio.create_task(hub.slots.wait(["tag:db"], hub.slots.mark(), timeout=30))
    await asyncio.sleep(0)
    peers = hub.from_peers()
    peers.run_changed(RUN, 2, own_state=True)
    peers.slots_freed(["tag:db"])
    assert await asyncio.wait_for(waiter, 1) is True
    assert await asyncio.wait_for(slot, 1) is True
    assert (sent.runs, sent.slots) == ({}, [])

    hub.notify(RUN, 3)
    hub.slots_freed(["tag:web"])
    hub.forget(_run_id(2))
    hub.wake_all()
    assert sent.runs == {RUN: (3, True)}
    assert (sent.slots, sent.gone, sent.everything) == (["tag:web"], [_run_id(2)], 1)
    hub.close()  # closing wakes the local waiters only
    assert sent.everything == 1


async def test_a_reconnect_wakes_every_waiter_and_slot_waiter() -> None:
    async def read(flow_run_id: str) -> int:
        return 0

    hub = EventHub(read, poll_interval=10)
    generation = hub.runs_generation
    poll = asyncio.create_task(hub.wait_for_runs_change(generation, timeout=30))
    slot = asyncio.create_task(hub.slots.wait(["tag:db"], hub.slots.mark(), timeout=30))
    await asyncio.sleep(0)
    hub.from_peers().everything_changed()
    assert await asyncio.wait_for(poll, 1) is True
    assert await asyncio.wait_for(slot, 1) is True

"""The event hub: local notifications wake waiters at once, storage polling catches the rest."""

from __future__ import annotations

import asyncio
import time

from headwater_server import errors
from headwater_server.events import EventHub

RUN = "0b1c2d3e-0000-4000-8000-000000000001"


class Storage:
    """A stand-in for the database's last-sequence column, written by "another process"."""

    def __init__(self) -> None:
        self.last_sequence = 1
        self.reads = 0
        self.deleted = False

    async def read(self, flow_run_id: str) -> int:
        self.reads += 1
        if self.deleted:
            raise errors.not_found("flow_run", flow_run_id)
        return self.last_sequence


async def test_notify_wakes_a_waiter_at_once() -> None:
    storage = Storage()
    hub = EventHub(storage.read, poll_interval=10)
    waiter = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=30))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    hub.notify(RUN, 2)
    assert await asyncio.wait_for(waiter, 1) is True
    assert storage.reads == 0


async def test_a_notification_for_an_older_sequence_does_not_wake() -> None:
    hub = EventHub(Storage().read, poll_interval=10)
    waiter = asyncio.ensure_future(hub.wait_for_change(RUN, 5, timeout=0.2))
    await asyncio.sleep(0.01)
    hub.notify(RUN, 5)
    assert await waiter is False


async def test_a_notification_just_before_the_wait_is_not_missed() -> None:
    hub = EventHub(Storage().read, poll_interval=10)
    hub.notify(RUN, 3)
    started = time.monotonic()
    assert await hub.wait_for_change(RUN, 2, timeout=5) is True
    assert time.monotonic() - started < 1


async def test_the_wait_times_out_quietly() -> None:
    storage = Storage()
    hub = EventHub(storage.read, poll_interval=0.05)
    assert await hub.wait_for_change(RUN, 1, timeout=0.2) is False
    assert storage.reads >= 2  # it kept checking storage while it waited


async def test_polling_sees_a_write_made_by_another_process() -> None:
    storage = Storage()
    hub = EventHub(storage.read, poll_interval=0.05)
    waiter = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=10))
    await asyncio.sleep(0.02)
    storage.last_sequence = 2  # no notify: the write happened elsewhere
    assert await asyncio.wait_for(waiter, 2) is True


async def test_a_deleted_run_wakes_the_waiter() -> None:
    storage = Storage()
    hub = EventHub(storage.read, poll_interval=0.05)
    storage.deleted = True
    assert await hub.wait_for_change(RUN, 1, timeout=5) is True


async def test_forget_and_close_wake_everyone() -> None:
    hub = EventHub(Storage().read, poll_interval=10)
    first = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=30))
    other = "0b1c2d3e-0000-4000-8000-000000000002"
    second = asyncio.ensure_future(hub.wait_for_change(other, 1, timeout=30))
    await asyncio.sleep(0.01)
    hub.forget(RUN)
    assert await asyncio.wait_for(first, 1) is True
    hub.close()
    assert await asyncio.wait_for(second, 1) is True
    assert await hub.wait_for_change(RUN, 100, timeout=30) is True


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    hub = EventHub(Storage().read, poll_interval=10)
    waiter = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=30))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert hub._waiters == {}


async def test_a_task_event_does_not_wake_a_waiter_for_the_runs_own_states() -> None:
    hub = EventHub(Storage().read, poll_interval=10)
    own = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=30, own_states_only=True))
    every = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=30))
    await asyncio.sleep(0.01)
    hub.notify(RUN, 2, own_state=False)
    assert await asyncio.wait_for(every, 1) is True
    await asyncio.sleep(0.01)
    assert not own.done()
    hub.notify(RUN, 3)
    assert await asyncio.wait_for(own, 1) is True
    # Remembered per kind: a task event just before the wait does not end an own-states wait.
    hub.notify(RUN, 4, own_state=False)
    assert await hub.wait_for_change(RUN, 3, timeout=0.05, own_states_only=True) is False
    assert await hub.wait_for_change(RUN, 3, timeout=5) is True


async def test_a_freed_slot_wakes_its_waiters_at_once_and_no_others() -> None:
    hub = EventHub(Storage().read)
    slots = hub.slots
    mark = slots.mark()
    db = asyncio.create_task(slots.wait(["tag:db"], mark, timeout=30))
    web = asyncio.create_task(slots.wait(["tag:web"], mark, timeout=0.2))
    await asyncio.sleep(0)
    slots.freed(["tag:db"])
    assert await asyncio.wait_for(db, 5) is True
    assert await web is False


async def test_a_slot_freed_before_the_wait_is_not_missed() -> None:
    slots = EventHub(Storage().read).slots
    mark = slots.mark()
    slots.freed(["deployment:d1"])  # between the proposal's read and the wait
    assert await slots.wait(["deployment:d1"], mark, timeout=30) is True
    # A slot freed before the mark was taken does not count.
    assert await slots.wait(["deployment:d1"], slots.mark(), timeout=0.05) is False


async def test_deleted_runs_and_closing_wake_every_slot_waiter() -> None:
    hub = EventHub(Storage().read)
    waiter = asyncio.create_task(hub.slots.wait(["tag:a"], hub.slots.mark(), timeout=30))
    await asyncio.sleep(0)
    hub.slots.freed([hub.slots.ANY])
    assert await asyncio.wait_for(waiter, 5) is True
    hub.close()
    assert await hub.slots.wait(["tag:a"], hub.slots.mark(), timeout=30) is True


class Relay:
    """Records what the hub sends to other servers (the `Wakes` a PostgreSQL notifier is)."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int, bool]] = []

    def run_changed(self, flow_run_id: str, sequence: int, own_state: bool) -> None:
        self.runs.append((flow_run_id, sequence, own_state))

    def run_gone(self, flow_run_id: str) -> None:
        pass

    def slots_freed(self, keys: object) -> None:
        pass

    def everything_changed(self) -> None:
        pass


async def test_task_events_wake_local_waiters_at_once_and_reach_peers_gathered() -> None:
    hub = EventHub(Storage().read, poll_interval=10)
    relay = Relay()
    hub.relay = relay  # type: ignore[assignment]
    waiter = asyncio.ensure_future(hub.wait_for_change(RUN, 1, timeout=30))
    await asyncio.sleep(0.01)
    other = "0b1c2d3e-0000-4000-8000-000000000002"
    hub.notify_task_events({RUN: 2})
    assert await asyncio.wait_for(waiter, 1) is True
    hub.notify_task_events({RUN: 4, other: 1})
    hub.notify_task_events({RUN: 3})
    hub.notify(RUN, 5)  # the run's own state goes out at once
    assert relay.runs == [(RUN, 5, True)]
    await asyncio.sleep(0.1)
    # One relay per run with its newest task event, after a moment.
    assert sorted(relay.runs[1:]) == sorted([(RUN, 4, False), (other, 1, False)])
    hub.notify_task_events({RUN: 6})
    hub.close()  # closing sends what is still gathered
    assert relay.runs[-1] == (RUN, 6, False)

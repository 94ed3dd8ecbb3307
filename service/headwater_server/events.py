"""In-process notification hub for flow run events: long polls and watches wait here.

Every successful write that adds a flow run event calls :meth:`EventHub.notify` with the run's new
``last_sequence``, which wakes the callers waiting on that run at once. Other server processes on
the same database tell this one of their writes through a :attr:`EventHub.relay` (on PostgreSQL,
LISTEN/NOTIFY: :mod:`headwater_server.storage.notify`), which hands them to :meth:`from_peers`.
As a last resort (SQLite has no such channel; a notification can be lost while the listener
reconnects) a waiter also asks storage every ``poll_interval``, one cheap row read.

All methods run on the server's event loop; nothing here is thread-safe, nor needs to be.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from headwater_server import errors

if TYPE_CHECKING:
    from headwater_server.storage.notify import Wakes

#: Seconds a task run event waits before it is relayed to other servers, gathered with the
#: others of that time: a flow of many quick tasks would otherwise cost a NOTIFY (and every
#: peer's listener a wake) per task state. Peers' watches see them this much later at most;
#: a run's own state changes are relayed at once.
TASK_EVENT_RELAY_SECONDS = 0.02

# How many recently notified runs to remember, so that a notification landing between a
# caller's storage read and its wait is not missed (the caller would otherwise sleep until the
# next poll).
_RECENT_RUNS = 4096


class _Waiter:
    __slots__ = ("after", "event", "own_states_only")

    def __init__(self, after: int, own_states_only: bool) -> None:
        self.after = after
        self.own_states_only = own_states_only
        self.event = asyncio.Event()


class EventHub:
    """Wakes callers waiting for a flow run's event log to grow past a sequence number.

    Args:
        read_last_sequence: Async function returning a run's latest sequence from storage;
            used for the periodic re-check. May raise ServiceError NOT_FOUND.
        poll_interval: Seconds between storage re-checks while a caller waits.
    """

    def __init__(
        self,
        read_last_sequence: Callable[[str], Awaitable[int]],
        poll_interval: float = 1.0,
    ) -> None:
        self._read_last_sequence = read_last_sequence
        self._poll_interval = poll_interval
        self._waiters: dict[str, set[_Waiter]] = {}
        self._recent: OrderedDict[str, int] = OrderedDict()
        # The same for the runs' own state changes only (not their task runs' events).
        self._recent_own: OrderedDict[str, int] = OrderedDict()
        self._closed = False
        # Any run's own state changed (or a run was created): pollers waiting for due runs
        # look again. Counted, so a change between a poller's claim and its wait is not lost.
        self._runs_changed = asyncio.Event()
        self._runs_generation = 0
        #: Proposals waiting for a concurrency slot wait here.
        self.slots = SlotHub()
        #: Where this server's changes are sent for other servers on the database (or None).
        self.relay: Wakes | None = None
        #: Task run events waiting to be relayed: run -> newest sequence (see
        #: TASK_EVENT_RELAY_SECONDS), and the timer that relays them.
        self._task_events_to_relay: dict[str, int] = {}
        self._relay_timer: asyncio.TimerHandle | None = None

    @property
    def poll_interval(self) -> float:
        """Seconds a waiter waits for a notification before it looks in storage anyway."""
        return self._poll_interval

    def from_peers(self) -> Wakes:
        """What other servers' changes are delivered to: wakes local waiters, relays nothing."""
        return _FromPeers(self)

    @property
    def closed(self) -> bool:
        """True once the server began shutting down; waits return at once."""
        return self._closed

    def notify(self, flow_run_id: str, sequence: int, own_state: bool = True) -> None:
        """Record that ``flow_run_id`` has events up to ``sequence`` and wake who waits for them.

        ``own_state`` is False for a task run's event: it does not wake callers that wait for
        the flow run's own state changes only (an engine's cancellation watch), so a flow of
        many tasks does not make that watch read storage once per task.
        """
        self._wake_run(flow_run_id, sequence, own_state)
        if self.relay is not None:
            self.relay.run_changed(flow_run_id, sequence, own_state)

    def _wake_run(self, flow_run_id: str, sequence: int, own_state: bool) -> None:
        _remember(self._recent, flow_run_id, sequence)
        if own_state:
            _remember(self._recent_own, flow_run_id, sequence)
            self._runs_changed_now()
        for waiter in self._waiters.get(flow_run_id, ()):
            if sequence > waiter.after and (own_state or not waiter.own_states_only):
                waiter.event.set()

    def notify_task_events(self, newest: dict[str, int]) -> None:
        """`notify` for task run events just committed: each run's newest sequence.

        Local waiters wake at once; other servers hear of them a moment later, together.
        """
        for flow_run_id, sequence in newest.items():
            self._wake_run(flow_run_id, sequence, False)
        if self.relay is None:
            return
        pending = self._task_events_to_relay
        for flow_run_id, sequence in newest.items():
            if sequence > pending.get(flow_run_id, -1):
                pending[flow_run_id] = sequence
        if self._relay_timer is None:
            self._relay_timer = asyncio.get_running_loop().call_later(
                TASK_EVENT_RELAY_SECONDS, self._relay_task_events
            )

    def _relay_task_events(self) -> None:
        self._relay_timer = None
        pending, self._task_events_to_relay = self._task_events_to_relay, {}
        if self.relay is not None:
            for flow_run_id, sequence in pending.items():
                self.relay.run_changed(flow_run_id, sequence, False)

    def forget(self, flow_run_id: str) -> None:
        """Wake every waiter of a deleted run so it re-reads storage and learns it is gone."""
        self._forget(flow_run_id)
        if self.relay is not None:
            self.relay.run_gone(flow_run_id)

    def _forget(self, flow_run_id: str) -> None:
        self._recent.pop(flow_run_id, None)
        self._recent_own.pop(flow_run_id, None)
        for waiter in self._waiters.get(flow_run_id, ()):
            waiter.event.set()

    def wake_all(self) -> None:
        """Wake every waiter (after a change too broad to name runs, such as deleting a flow)."""
        self._wake_all()
        if self.relay is not None:
            self.relay.everything_changed()

    def slots_freed(self, keys: Iterable[str]) -> None:
        """Slots of ``keys`` were freed (committed): wake local waiters and tell the peers."""
        keys = list(keys)
        self.slots.freed(keys)
        if self.relay is not None:
            self.relay.slots_freed(keys)

    def _wake_all(self) -> None:
        self._runs_changed_now()
        self._recent.clear()
        self._recent_own.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.event.set()

    def close(self) -> None:
        """Stop waiting: every current and future wait returns immediately."""
        if self._relay_timer is not None:  # what was gathered still goes out
            self._relay_timer.cancel()
            self._relay_task_events()
        self._closed = True
        self._wake_all()
        self.slots.close()

    async def wait_for_change(
        self,
        flow_run_id: str,
        after_sequence: int,
        timeout: float,
        own_states_only: bool = False,
    ) -> bool:
        """Wait until the run has an event after ``after_sequence``, or ``timeout`` seconds pass.

        With ``own_states_only`` only the run's own state changes count (task run events are
        ignored, except by the periodic storage re-check, which cannot tell them apart).

        Returns:
            True when something changed (a newer event, the run deleted, or the hub closing) and
            the caller should read storage again; False when the timeout passed quietly.
        """
        recent = self._recent_own if own_states_only else self._recent
        if self._closed or recent.get(flow_run_id, -1) > after_sequence:
            return True
        waiter = _Waiter(after_sequence, own_states_only)
        waiters = self._waiters.setdefault(flow_run_id, set())
        waiters.add(waiter)
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(
                        waiter.event.wait(), timeout=min(remaining, self._poll_interval)
                    )
                    return True
                except TimeoutError:
                    pass
                if await self._changed_in_storage(flow_run_id, after_sequence):
                    return True
        finally:
            waiters.discard(waiter)
            if not waiters and self._waiters.get(flow_run_id) is waiters:
                del self._waiters[flow_run_id]

    @property
    def runs_generation(self) -> int:
        """A number that grows whenever a run is created or its own state changes."""
        return self._runs_generation

    async def wait_for_runs_change(self, after_generation: int, timeout: float) -> bool:
        """Wait until :attr:`runs_generation` passes ``after_generation``, or ``timeout`` passes.

        Pollers for due runs (``PollRuns``) read the generation before they look in storage
        and wait here with it, so a run created meanwhile wakes them at once.

        Returns:
            True when something changed (or the hub closed); False when the timeout passed.
        """
        if self._closed or self._runs_generation > after_generation:
            return True
        try:
            await asyncio.wait_for(self._runs_changed.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return self._runs_generation > after_generation
        return True

    def _runs_changed_now(self) -> None:
        self._runs_generation += 1
        # Wake who waits on the current event, and give later waiters a fresh one.
        self._runs_changed.set()
        self._runs_changed = asyncio.Event()

    async def _changed_in_storage(self, flow_run_id: str, after_sequence: int) -> bool:
        try:
            return await self._read_last_sequence(flow_run_id) > after_sequence
        except errors.ServiceError:
            # Deleted (or unreadable): let the caller read again and report it properly.
            return True


class _FromPeers:
    """The hub as other servers' notifications reach it: local wakes only, never relayed."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    def run_changed(self, flow_run_id: str, sequence: int, own_state: bool) -> None:
        self._hub._wake_run(flow_run_id, sequence, own_state)

    def run_gone(self, flow_run_id: str) -> None:
        self._hub._forget(flow_run_id)

    def slots_freed(self, keys: Iterable[str]) -> None:
        self._hub.slots.freed(keys)

    def everything_changed(self) -> None:
        self._hub._wake_all()
        self._hub.slots.freed([SlotHub.ANY])


class SlotHub:
    """Wakes proposals waiting for a concurrency slot the moment one of their limits frees one.

    Keys name limits (``tag:<tag>``, ``deployment:<id>``; ``*`` wakes every waiter). A waiter
    takes :meth:`mark` before its proposal reads the slots, and :meth:`wait` returns at once if
    one of its keys was freed since: a slot freed between the proposal's commit and the wait is
    not missed. Slots freed through another server arrive through the hub's relay
    (:meth:`EventHub.from_peers`); without one (SQLite), such waiters learn of the slot when
    their wait times out and their engine proposes again.
    """

    ANY = "*"

    def __init__(self) -> None:
        self._generation = 0
        self._freed: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._closed = False

    def mark(self) -> int:
        """The current point in the history of freed slots (pass it to :meth:`wait`)."""
        return self._generation

    def freed(self, keys: Iterable[str]) -> None:
        """Slots of ``keys`` were freed (committed): wake who waits for them."""
        self._generation += 1
        for key in keys:
            _remember(self._freed, key, self._generation)
            waiting = self._all_waiters() if key == self.ANY else self._waiters.get(key, ())
            for event in waiting:
                event.set()

    def _all_waiters(self) -> set[asyncio.Event]:
        return {event for events in self._waiters.values() for event in events}

    def close(self) -> None:
        """Stop waiting: every current and future wait returns at once."""
        self._closed = True
        for event in self._all_waiters():
            event.set()

    async def wait(self, keys: Sequence[str], since: int, timeout: float) -> bool:
        """Wait until a slot of one of ``keys`` frees after ``since``, or ``timeout`` passes.

        Returns:
            True when woken (or closing), False when the timeout passed quietly.
        """
        if self._closed or any(self._freed.get(key, 0) > since for key in (*keys, self.ANY)):
            return True
        event = asyncio.Event()
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout=max(timeout, 0.0))
            return True
        except TimeoutError:
            return False
        finally:
            for key in keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[key]


def _remember(recent: OrderedDict[str, int], flow_run_id: str, sequence: int) -> None:
    """Keep ``sequence`` as the run's newest in ``recent`` (bounded: oldest runs drop out)."""
    if recent.get(flow_run_id, -1) < sequence:
        recent[flow_run_id] = sequence
        recent.move_to_end(flow_run_id)
        if len(recent) > _RECENT_RUNS:
            recent.popitem(last=False)

"""What every application operation works with: the database, the event hub, the shutdown flag.

One :class:`Backend` per running server; the servicers, the engine stream and any in-process
caller (a scheduler, a worker, a UI) hold it instead of globals, so two servers (a test server and
an embedded one) can live in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from headwater_server.storage._concurrency import SLOTS_FREED

if TYPE_CHECKING:
    from headwater_server.events import EventHub
    from headwater_server.metrics import ServerMetrics
    from headwater_server.storage.database import Database

__all__ = ["Backend", "Operation", "time_remaining"]

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


@dataclass
class Backend:
    """Everything an operation needs: the database, the event hub and the shutdown flag."""

    db: Database
    hub: EventHub
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Open engine streams, so a shutdown can end each one cleanly with UNAVAILABLE.
    engine_sessions: set[Any] = field(default_factory=set)
    # The server's metrics (headwater_server.metrics.ServerMetrics), None when nobody reads them.
    metrics: ServerMetrics | None = None

    def __post_init__(self) -> None:
        # Task run states are flow run events written deep in storage (on a database thread):
        # storage announces them once committed, and the hub wakes the flow run's watchers.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # built outside a loop (a test): watchers then notice through storage
        self.db.repository.announce = _Announcer(loop, self.hub)


#: How often, while task run events keep coming, the loop hands them to the hub: a watcher
#: hears of a task's state at most this late, and a busy flow wakes the loop this often at
#: most for them instead of once per transaction.
ANNOUNCE_SECONDS = 0.005


class _Announcer:
    """Carries committed task run events from the database thread to the hub on the loop.

    One ``call_soon_threadsafe`` per transaction cost the database thread a write to the
    loop's self-pipe and the loop a wake-up, each time: about a tenth of a sequential task.
    The first events after a quiet spell are delivered at once; while more keep coming, a timer
    on the loop delivers what accumulated every `ANNOUNCE_SECONDS` (each run's newest
    sequence only: a watcher reads everything up to it) and stops after a quiet tick. Freed
    concurrency slots (entries named SLOTS_FREED + their key) are delivered at once, since a
    proposal may be waiting for one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, hub: EventHub) -> None:
        self._loop = loop
        self._hub = hub
        self._lock = threading.Lock()
        self._newest: dict[str, int] = {}
        self._freed: list[str] = []
        self._ticking = False  # the loop's timer runs (it delivers what arrives meanwhile)
        self._woken = False  # a wake-up of the loop is on its way

    def __call__(self, events: list[tuple[str, int]]) -> None:
        """Take a transaction's events (on the database thread, after its commit)."""
        urgent = False
        with self._lock:
            newest = self._newest
            for flow_run_id, sequence in events:
                if flow_run_id.startswith(SLOTS_FREED):
                    self._freed.append(flow_run_id.removeprefix(SLOTS_FREED))
                    urgent = True
                elif sequence > newest.get(flow_run_id, -1):
                    newest[flow_run_id] = sequence
            if self._woken or (self._ticking and not urgent):
                return
            self._woken = True
        # RuntimeError: the loop is closed (the server stopped); nobody is watching any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._woken = False
        self._deliver()
        if not self._ticking:
            self._ticking = True
            self._loop.call_later(ANNOUNCE_SECONDS, self._tick)

    def _tick(self) -> None:
        if not self._deliver():
            with self._lock:  # quiet: stop, unless something arrived since (the next tick's)
                if not self._newest and not self._freed:
                    self._ticking = False
                    return
        self._loop.call_later(ANNOUNCE_SECONDS, self._tick)

    def _deliver(self) -> bool:
        """Hand what accumulated to the hub; whether there was anything."""
        with self._lock:
            newest, self._newest = self._newest, {}
            freed, self._freed = self._freed, []
        if newest:
            self._hub.notify_task_events(newest)
        if freed:
            self._hub.slots_freed(freed)
        return bool(newest or freed)


# Seconds left before the caller's deadline (None: no deadline). A long poll reads it to answer
# before the deadline instead of failing with DEADLINE_EXCEEDED; the gRPC layer sets it per call.
# Each RPC runs in its own task, so the value never leaks between calls.
time_remaining: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "time_remaining", default=None
)

#: The shape of every application operation: ``await op(backend, request) -> response``.
Operation = Callable[[Backend, RequestT], Awaitable[ResponseT]]

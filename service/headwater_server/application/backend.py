"""What every application operation works with: the database, the event hub, the shutdown flag.

One :class:`Backend` per running server; the servicers, the engine stream and any in-process
caller (a scheduler, a worker, a UI) hold it instead of globals, so two servers (a test server and
an embedded one) can live in one process.
"""

from __future__ import annotations

import asyncio
import contextvars
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
        # storage announces each once committed, and the hub wakes the flow run's watchers.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # built outside a loop (a test): watchers then notice through storage
        hub = self.hub

        def announce(events: list[tuple[str, int]]) -> None:
            # One hop to the loop per commit (each costs the database thread a GIL hand-off),
            # with each run's newest sequence only: a watcher reads everything up to it.
            # Freed concurrency slots ride along as entries named SLOTS_FREED + their key.
            newest: dict[str, int] = {}
            freed: list[str] = []
            for flow_run_id, sequence in events:
                if flow_run_id.startswith(SLOTS_FREED):
                    freed.append(flow_run_id.removeprefix(SLOTS_FREED))
                elif sequence > newest.get(flow_run_id, -1):
                    newest[flow_run_id] = sequence
            if newest:
                loop.call_soon_threadsafe(hub.notify_task_events, newest)
            if freed:
                loop.call_soon_threadsafe(hub.slots_freed, freed)

        self.db.repository.announce = announce


# Seconds left before the caller's deadline (None: no deadline). A long poll reads it to answer
# before the deadline instead of failing with DEADLINE_EXCEEDED; the gRPC layer sets it per call.
# Each RPC runs in its own task, so the value never leaks between calls.
time_remaining: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "time_remaining", default=None
)

#: The shape of every application operation: ``await op(backend, request) -> response``.
Operation = Callable[[Backend, RequestT], Awaitable[ResponseT]]

"""Wakes between server processes on one PostgreSQL database, through LISTEN/NOTIFY.

Each server's event hub wakes its own waiters (long polls for due runs, watches, runs waiting for
a concurrency slot) the moment a write on that server commits. Replicas on one PostgreSQL learn
of each other's writes here instead of re-reading the tables every second: a server publishes
what its commits changed (runs' new sequences, freed slot keys, deleted runs) on one channel,
and every other server's listener hands them to its hub as if they were its own.

- Publishing happens after the commit (the hub is told only once a write returned), on a
  connection of its own, so a peer that wakes always reads the committed rows. Changes made
  while a NOTIFY is on its way are gathered into the next one: under load one statement
  carries many changes, and an idle server sends each change at once.
- The listener is one dedicated connection per server process. When it drops (the database
  restarted, the network failed) it reconnects with a growing pause, and on reconnecting wakes
  every local waiter, since notifications sent meanwhile are lost; each waiter then reads
  storage again. Waiters still re-check storage on a long fallback period, as a last resort.
- A server ignores its own notifications (each carries the sender's random id).

Messages are text lines, the first the sender id: ``r <run id> <sequence>`` (a run's own state
changed, or it was created), ``t <run id> <sequence>`` (a task run event of the run), ``g <run
id>`` (the run was deleted), ``s <json key>`` (a slot of that limit was freed), ``*`` (wake
everything). PostgreSQL caps a payload at 8000 bytes, so a long batch goes as several.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine

__all__ = [
    "CHANNEL",
    "LISTENER_NAME",
    "PUBLISHER_NAME",
    "PostgresNotifier",
    "Wakes",
    "connect_kwargs",
]

logger = logging.getLogger("headwater_server.notify")

#: The one channel every server of a database listens on (NOTIFY is per database).
CHANNEL = "headwater_wakes"
#: The notifier's two connections show under these names in pg_stat_activity.
LISTENER_NAME = "headwater-listen"
PUBLISHER_NAME = "headwater-notify"
# PostgreSQL refuses payloads of 8000 bytes or more.
_MAX_PAYLOAD_BYTES = 7_900
# Pauses between attempts to reconnect the listener: grows to the last, then stays.
_RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
# A quiet listener checks its connection this often (a dead peer host sends no RST).
_LISTENER_CHECK_SECONDS = 30.0


class Wakes(Protocol):
    """What the hub wakes on; a notifier both receives these (to send) and delivers them."""

    def run_changed(self, flow_run_id: str, sequence: int, own_state: bool) -> None:
        """A run's event log grew to ``sequence`` (``own_state``: by its own state change)."""

    def run_gone(self, flow_run_id: str) -> None:
        """A run was deleted."""

    def slots_freed(self, keys: Iterable[str]) -> None:
        """Slots of the limits named by ``keys`` were freed."""

    def everything_changed(self) -> None:
        """Something too broad to name changed (or notifications may have been lost)."""


def connect_kwargs(engine: Engine) -> dict[str, Any]:
    """psycopg's connection arguments for the database ``engine`` talks to (the same URL)."""
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs.pop("context", None)  # SQLAlchemy's type adapters; the notifier sends text only
    return dict(kwargs)


class _Outbox:
    """Changes not yet published, merged: a run's newest sequence wins, keys are a set."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.runs: dict[str, int] = {}
        self.task_events: dict[str, int] = {}
        self.gone: set[str] = set()
        self.slots: set[str] = set()
        self.everything = False

    def __bool__(self) -> bool:
        return bool(self.everything or self.runs or self.task_events or self.gone or self.slots)

    def lines(self) -> Iterator[str]:
        if self.everything:
            yield "*"
        for run_id, sequence in self.runs.items():
            yield f"r {run_id} {sequence}"
        for run_id, sequence in self.task_events.items():
            if sequence > self.runs.get(run_id, -1):
                yield f"t {run_id} {sequence}"
        for run_id in self.gone:
            yield f"g {run_id}"
        for key in self.slots:
            yield f"s {json.dumps(key)}"


def payloads(sender: str, lines: Iterable[str]) -> list[str]:
    """The lines packed into as few NOTIFY payloads as fit, each starting with the sender."""
    packed: list[str] = []
    current = [sender]
    size = len(sender)
    for line in lines:
        if len(line) + 1 + len(sender) > _MAX_PAYLOAD_BYTES:
            line = "*"  # one absurdly long slot key: wake everyone instead
        if size + 1 + len(line.encode()) > _MAX_PAYLOAD_BYTES:
            packed.append("\n".join(current))
            current, size = [sender], len(sender)
        current.append(line)
        size += 1 + len(line.encode())
    if len(current) > 1:
        packed.append("\n".join(current))
    return packed


def deliver(payload: str, sender: str, to: Wakes) -> None:
    """Hand one received payload to ``to``, unless ``sender`` sent it; bad lines are skipped."""
    lines = payload.split("\n")
    if not lines or lines[0] == sender:
        return
    for line in lines[1:]:
        kind, _, rest = line.partition(" ")
        try:
            if kind == "r" or kind == "t":
                run_id, _, sequence = rest.partition(" ")
                to.run_changed(run_id, int(sequence), own_state=kind == "r")
            elif kind == "g":
                to.run_gone(rest)
            elif kind == "s":
                to.slots_freed([str(json.loads(rest))])
            elif kind == "*":
                to.everything_changed()
        except ValueError:
            logger.warning("Ignored a malformed wake notification line: %r", line[:200])


class PostgresNotifier:
    """One server's LISTEN connection and NOTIFY publisher (see the module docstring).

    Implements :class:`Wakes` for the hub to send through; delivers what peers send to
    ``deliver_to``. Call :meth:`start` on the server's event loop and :meth:`stop` at shutdown.
    """

    def __init__(self, connect: dict[str, Any], deliver_to: Wakes) -> None:
        self._connect_kwargs = connect
        self._deliver_to = deliver_to
        self.sender = uuid.uuid4().hex
        self._outbox = _Outbox()
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._publisher: psycopg.AsyncConnection[Any] | None = None
        #: Set while the listener is connected and LISTENing (tests wait for it).
        self.listening = asyncio.Event()

    # ------------------------------------------------------------------ Wakes (outgoing)

    def run_changed(self, flow_run_id: str, sequence: int, own_state: bool) -> None:
        target = self._outbox.runs if own_state else self._outbox.task_events
        if sequence > target.get(flow_run_id, -1):
            target[flow_run_id] = sequence
        self._wanted.set()

    def run_gone(self, flow_run_id: str) -> None:
        self._outbox.gone.add(flow_run_id)
        self._wanted.set()

    def slots_freed(self, keys: Iterable[str]) -> None:
        self._outbox.slots.update(keys)
        self._wanted.set()

    def everything_changed(self) -> None:
        self._outbox.everything = True
        self._wanted.set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, timeout: float = 10.0) -> None:
        """Start listening and publishing; return once LISTEN took effect (or ``timeout``).

        A database that cannot be reached now is retried in the background; until then the
        waiters' fallback re-check covers what other servers change.
        """
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="notify-listen"),
            asyncio.create_task(self._publish_forever(), name="notify-publish"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), timeout)

    async def stop(self) -> None:
        """Send what is pending, then close both connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._outbox:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._send_pending()
        for conn in (self._listener, self._publisher):
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        self._listener = self._publisher = None

    # ------------------------------------------------------------------ listening

    async def _listen_forever(self) -> None:
        attempt = 0
        connected_before = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    **self._connect_kwargs, autocommit=True, application_name=LISTENER_NAME
                )
            except (psycopg.Error, OSError) as exc:
                pause = _RECONNECT_SECONDS[min(attempt, len(_RECONNECT_SECONDS) - 1)]
                if attempt == 0:
                    logger.warning("Cannot listen for other servers' changes (%s); retrying", exc)
                attempt += 1
                await asyncio.sleep(pause)
                continue
            self._listener = conn
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                if connected_before:
                    logger.info("Listening for other servers' changes again")
                    # What peers sent while we were away is lost: every waiter looks again.
                    self._deliver_to.everything_changed()
                attempt, connected_before = 0, True
                await self._receive(conn)
            except (psycopg.Error, OSError) as exc:
                logger.warning("Lost the connection listening for other servers (%s)", exc)
            finally:
                self.listening.clear()
                self._listener = None
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()

    async def _receive(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Deliver notifications until the connection fails (raises psycopg.Error)."""
        while True:
            async for note in conn.notifies(timeout=_LISTENER_CHECK_SECONDS):
                deliver(note.payload, self.sender, self._deliver_to)
            await conn.execute("SELECT 1")  # quiet for a while: is the connection alive?

    # ------------------------------------------------------------------ publishing

    async def _publish_forever(self) -> None:
        while True:
            await self._wanted.wait()
            try:
                await self._send_pending()
            except (psycopg.Error, OSError) as exc:
                logger.warning("Could not tell other servers of a change (%s)", exc)
                await self._drop_publisher()

    async def _send_pending(self) -> None:
        """Publish everything gathered so far (one try, one retry on a fresh connection)."""
        self._wanted.clear()
        texts = payloads(self.sender, self._outbox.lines())
        self._outbox.clear()
        for text in texts:
            try:
                await self._notify(text)
            except (psycopg.Error, OSError):
                await self._drop_publisher()
                await self._notify(text)

    async def _notify(self, payload: str) -> None:
        if self._publisher is None or self._publisher.closed:
            self._publisher = await psycopg.AsyncConnection.connect(
                **self._connect_kwargs, autocommit=True, application_name=PUBLISHER_NAME
            )
        await self._publisher.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def _drop_publisher(self) -> None:
        conn, self._publisher = self._publisher, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

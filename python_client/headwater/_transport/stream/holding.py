"""No-wait operations held back briefly, so they ride with the next message on the stream.

A task's COMPLETED end is sent without waiting, and the engine's very next step is usually the
next task's start. Handing the end to the background loop at once would cost a loop wake-up and
a message of its own; held here instead, it leaves with the next operation any thread sends
(one hand-off, one ``batch`` message, one database transaction on the server), or after
`HOLD_SECONDS` when nothing else comes, so a state is never held back for long. Whatever is
held always goes out before the operation that takes it, so the stream's order (a task's end
before its flow run's final state) is the order the engine sent them in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from headwater._transport.stream.ops import Op

__all__ = ["HOLD_SECONDS", "HeldOps"]

#: The longest a held operation waits for company before it is sent alone.
HOLD_SECONDS = 0.005


class HeldOps:
    """Operations waiting to ride with the next one; thread-safe.

    Args:
        loop: The background loop that submits operations.
        submit: Registers and queues one operation; called on ``loop`` only.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, submit: Callable[[Op], None]) -> None:
        self._loop = loop
        self._submit = submit
        self._lock = threading.Lock()
        self._ops: list[Op] = []
        # A timer runs while operations are being held; it stops after a quiet period, so an
        # idle process has no timer waking it.
        self._ticking = False
        self._held_since_tick = False

    def hold(self, op: Op) -> None:
        """Keep ``op`` until the next operation (or the timer) takes it."""
        with self._lock:
            self._ops.append(op)
            self._held_since_tick = True
            if self._ticking:
                return
            self._ticking = True
        self._loop.call_soon_threadsafe(self._schedule)

    def take(self) -> list[Op]:
        """Everything held, oldest first, for the caller to submit before its own operation."""
        if not self._ops:  # a racy peek is fine: a missed op is taken by the timer
            return []
        with self._lock:
            ops, self._ops = self._ops, []
        return ops

    def _schedule(self) -> None:
        self._loop.call_later(HOLD_SECONDS, self._tick)

    def _tick(self) -> None:
        due: list[Op] = []
        with self._lock:
            ops = self._ops
            if ops and time.monotonic() - ops[0].submitted >= HOLD_SECONDS:
                due, self._ops = ops, []
            keep_ticking = bool(self._ops) or self._held_since_tick
            self._held_since_tick = False
            self._ticking = keep_ticking
        for op in due:
            self._submit(op)
        if keep_ticking:
            self._schedule()

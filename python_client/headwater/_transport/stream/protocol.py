"""The engine stream's protocol: number each operation, match answers, make resends harmless.

Every operation gets a ``sequence`` and waits in `OperationTable` until the answer with that
sequence arrives, so one stream carries many callers' operations at once and answers may come
in any order. When the stream breaks, whatever is still in the table is sent again on the next
stream. That is safe because each mutating operation carries a ``transition_id`` or
``request_id`` (added here when the caller left it empty), so the server answers a repeat with
its first answer and applies nothing twice.
"""

from __future__ import annotations

import asyncio
import collections
import copy

from headwater._ids import uuid7_str
from headwater._transport.channel import MAX_MESSAGE_BYTES
from headwater._transport.stream.ops import FlushWaiter, Op
from headwater.exceptions import InvalidRequest, ServiceUnavailable
from headwater.v1 import engine_pb2

__all__ = ["OperationTable", "Outbox", "check_size", "with_request_id", "with_transition_id"]


class Outbox:
    """The open stream's operations waiting to be written, oldest first (loop only).

    A deque and at most one waiting writer: the stream's writer takes every operation through
    it, and `asyncio.Queue`'s general machinery (getter and putter lists, size checks, task
    accounting) was a measurable share of the loop's time per task.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: collections.deque[Op] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, op: Op) -> None:
        """Queue ``op`` and wake the writer if it waits."""
        self._items.append(op)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Op:
        """The oldest operation, waiting for one if there is none."""
        items = self._items
        while not items:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
        return items.popleft()

    def get_nowait(self) -> Op:
        """The oldest operation (call only when not `empty`)."""
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items


class OperationTable:
    """The operations sent and not yet answered, by sequence; touched on the background loop only.

    ``queue`` is the open stream's outbox (None between streams), and ``demand`` wakes the
    stream's runner when an operation arrives while no stream is open.
    """

    __slots__ = (
        "_flush_waiters",
        "_next_sequence",
        "address",
        "closed",
        "demand",
        "pending",
        "queue",
    )

    def __init__(self, address: str) -> None:
        self.address = address
        self.pending: dict[int, Op] = {}
        self._next_sequence = 1
        self.queue: Outbox | None = None
        self.demand: asyncio.Event | None = None
        self._flush_waiters: list[FlushWaiter] = []
        self.closed = False

    def submit(self, op: Op) -> None:
        """Register an operation and queue it on the open stream."""
        if self.closed:
            op.resolve(None, self.closed_error())
            return
        sequence = self._next_sequence
        self._next_sequence = sequence + 1
        op.request.sequence = sequence
        self.pending[sequence] = op
        if self.queue is not None:
            self.queue.put_nowait(op)
        elif self.demand is not None:
            self.demand.set()

    def answer(self, sequence: int, response: object, error: BaseException | None) -> None:
        """Resolve the operation numbered ``sequence`` (late or repeated answers are dropped)."""
        op = self.pending.pop(sequence, None)
        if op is None:
            return  # already failed by the retry deadline, or a duplicate answer
        op.resolve(response, error)
        if self._flush_waiters:
            self._settle_flush_waiters()

    def fail_all(self, error: BaseException) -> None:
        """Fail every unanswered operation with its own copy of ``error``."""
        # One copy per caller: threads raising one shared instance would tangle its traceback.
        for sequence in list(self.pending):
            self.answer(sequence, None, copy.copy(error))

    def add_flush_waiter(self, waiter: FlushWaiter) -> None:
        """Call ``waiter`` back once every operation submitted so far is answered."""
        waiter.limit = self._next_sequence - 1
        if self.closed or self._is_flushed(waiter.limit):
            waiter.resolve()
        else:
            self._flush_waiters.append(waiter)

    def close(self) -> None:
        """Fail what is unanswered and release every flush waiter; `closed` is set already."""
        self.fail_all(self.closed_error())
        for waiter in self._flush_waiters:
            waiter.resolve()
        self._flush_waiters = []

    def closed_error(self) -> ServiceUnavailable:
        """The error of an operation the closed connection will never answer."""
        return ServiceUnavailable(
            "CONNECTION_CLOSED",
            f"The connection to the Headwater service at {self.address} was closed "
            "(the process is shutting down) before the operation was answered.",
        )

    def _is_flushed(self, limit: int) -> bool:
        # `pending` holds sequences in increasing order (they are assigned on this loop and
        # never re-inserted), so its first key is the oldest unanswered operation.
        oldest = next(iter(self.pending), None)
        return oldest is None or oldest > limit

    def _settle_flush_waiters(self) -> None:
        still_waiting = []
        for waiter in self._flush_waiters:
            if self._is_flushed(waiter.limit):
                waiter.resolve()
            else:
                still_waiting.append(waiter)
        self._flush_waiters = still_waiting


def check_size(request: engine_pb2.ConnectRequest) -> None:
    """Refuse a request over the message limit before it reaches the stream.

    A message over the limit would fail the whole stream, and with it every operation in
    flight, again on every resend, so it is refused here on its own.

    Raises:
        InvalidRequest: The request is too large (reason ``MESSAGE_TOO_LARGE``).
    """
    size = request.ByteSize()
    if size > MAX_MESSAGE_BYTES:
        kind = request.WhichOneof("operation")
        raise InvalidRequest(
            "MESSAGE_TOO_LARGE",
            f"The {kind} request is {size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit. "
            "Persist large results to result storage instead of sending them inline, and "
            "send log lines in smaller batches.",
        )


def with_request_id(request: engine_pb2.ConnectRequest) -> engine_pb2.ConnectRequest:
    """Give a create operation a ``request_id`` so a resend after reconnecting is harmless.

    The request is the stream's own copy, so the caller's message is left as it was.
    """
    return _with_idempotency_key(request, "request_id")


def with_transition_id(request: engine_pb2.ConnectRequest) -> engine_pb2.ConnectRequest:
    """Give a state proposal a ``transition_id`` so a resend is answered, not applied, twice.

    Every call gets a fresh id unless the caller set one, so proposing again after a WAIT
    answer is a new proposal rather than a repeat of the first.
    """
    return _with_idempotency_key(request, "transition_id")


def _with_idempotency_key(
    request: engine_pb2.ConnectRequest, field: str
) -> engine_pb2.ConnectRequest:
    inner = getattr(request, request.WhichOneof("operation"))
    if not getattr(inner, field):
        setattr(inner, field, uuid7_str())
    return request

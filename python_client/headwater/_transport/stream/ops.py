"""One operation on the engine stream, from the caller's hand-off to its answer.

Callers on any thread (or any event loop) hand an operation to Headwater's background loop and
wait for it; the loop resolves it exactly once, with the answer or an error. Each kind of
caller gets the cheapest wake-up that works for it: a sync caller blocks on a plain lock
(cheaper than a `concurrent.futures.Future`), an async caller awaits a future of its own loop,
and a fire-and-forget caller is not woken at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from headwater.v1 import engine_pb2

__all__ = [
    "AsyncOp",
    "FlushWaiter",
    "NowaitOp",
    "Op",
    "RecordedOp",
    "SyncOp",
    "settle_future",
]


class Op:
    """One operation on the stream, from submission to its answer or its failure."""

    __slots__ = ("request", "submitted")

    #: Whether `resolve` may run on any thread (the direct lane's database thread), not only on
    #: the background loop.
    any_thread = False
    #: Whether the thread that hands it over then blocks until it is answered: the direct
    #: lane may store it on that thread (see `EngineConnection._hand_over`).
    waited = False

    def __init__(self, request: engine_pb2.ConnectRequest) -> None:
        self.request = request
        self.submitted = time.monotonic()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        """Deliver the outcome; called on the background loop exactly once."""
        raise NotImplementedError


class SyncOp(Op):
    """An operation a thread waits for: a released lock is the cheapest wake-up CPython has."""

    __slots__ = ("_done", "error", "response")

    any_thread = True  # a lock release wakes the caller from any thread
    waited = True  # `EngineConnection._call` waits right after handing it over

    def __init__(self, request: engine_pb2.ConnectRequest) -> None:
        super().__init__(request)
        self.response: Any = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        self.response = response
        self.error = error
        self._done.release()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until resolved; return the answer or raise the error."""
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("no answer from the Headwater service in time")
        if self.error is not None:
            raise self.error
        return self.response


class AsyncOp(Op):
    """An operation awaited on some event loop, possibly not the background one."""

    __slots__ = ("any_thread", "future", "loop", "same_loop")

    def __init__(
        self, request: engine_pb2.ConnectRequest, loop: asyncio.AbstractEventLoop, same_loop: bool
    ) -> None:
        super().__init__(request)
        self.loop = loop
        self.same_loop = same_loop
        # On another loop the answer is posted to it, which works from any thread.
        self.any_thread = not same_loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        if self.same_loop:
            settle_future(self.future, response, error)
        else:
            # RuntimeError: the caller's loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(settle_future, self.future, response, error)


def settle_future(future: asyncio.Future[Any], response: Any, error: BaseException | None) -> None:
    """Resolve ``future`` unless its awaiting task gave up (was cancelled) already."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(response)


class NowaitOp(Op):
    """A fire-and-forget operation (log lines): nobody waits, so a failure is only reported."""

    __slots__ = ()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        if error is not None:
            print(f"headwater: an operation sent without waiting failed: {error}", file=sys.stderr)


class RecordedOp(Op):
    """A fire-and-forget operation whose outcome is handed to a callback (on the loop).

    A task's final state is sent this way: nobody waits for it, but the engine checks the
    answers at its next flush.
    """

    __slots__ = ("_record", "any_thread")

    def __init__(
        self,
        request: engine_pb2.ConnectRequest,
        record: Callable[[Any, BaseException | None], object],
    ) -> None:
        super().__init__(request)
        self._record = record
        self.any_thread = False  # see `EngineConnection.send_held`

    def resolve(self, response: Any, error: BaseException | None) -> None:
        self._record(response, error)


class FlushWaiter:
    """`flush` waits until every operation up to ``limit`` is answered, then calls back."""

    __slots__ = ("callback", "limit")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.limit = 0

    def resolve(self) -> None:
        self.callback()

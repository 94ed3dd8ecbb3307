"""Hops from the asyncio loop to the database threads and back: how ``Database.run`` waits.

Every repository call is blocking, so the server hands it to a thread and awaits the answer.
``loop.run_in_executor`` does that through a ``concurrent.futures`` pool: a work item, a
concurrent future with its own lock and condition, and ``wrap_future`` chaining it to an asyncio
future. For SQLite, where one thread does all the writing anyway, :class:`WorkerHop` cuts that
to one queue put and one ``call_soon_threadsafe``. Measured with
bench/workloads/propose_state.py on a loaded 2-vCPU box (paired rounds): the bare hop ~35-43 µs
less, a ``set_flow_run_state`` over the engine stream ~35-60 µs less, a whole run's three calls
~125-190 µs less. PostgreSQL keeps the pool (:class:`PoolHop`), where several
transactions can run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from queue import Empty, SimpleQueue
from typing import Any, Protocol, TypeVar

from headwater_server.storage.fastpath import GroupBroken

Call = Callable[[], Any]
#: Runs a call taken to run on its caller's thread (`WorkerHop.submit_here`).
RunHere = Callable[[], None]
logger = logging.getLogger("headwater_server.storage")
_T = TypeVar("_T")


class HopClosedError(RuntimeError):
    """The hop was closed: no more calls are taken (the database is closing)."""


class Hop(Protocol):
    """Runs blocking calls on database threads for an asyncio caller."""

    def submit(self, loop: asyncio.AbstractEventLoop, call: Callable[[], _T]) -> asyncio.Future[_T]:
        """Queue ``call``; the returned future (of ``loop``) gets its result or exception.

        Raises:
            HopClosedError: After :meth:`close`.
        """
        ...

    def close(self) -> None:
        """Run everything already queued, then stop the threads. Idempotent; blocks."""
        ...


class PoolHop:
    """``run_in_executor`` on a thread pool: for PostgreSQL, where calls run in parallel."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    def submit(self, loop: asyncio.AbstractEventLoop, call: Callable[[], _T]) -> asyncio.Future[_T]:
        try:
            return loop.run_in_executor(self._executor, call)
        except RuntimeError as exc:  # "cannot schedule new futures after shutdown"
            raise HopClosedError(str(exc)) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True)


_STOP = None

#: The most queued calls one group (one transaction) takes; the rest wait for the next.
MAX_GROUP = 256


class WorkerHop:
    """One dedicated thread fed by a queue, answering through ``call_soon_threadsafe``.

    Calls run one at a time in the order submitted (SQLite has one writer; one thread also
    keeps one warm connection). A call whose awaiting future was cancelled before the thread
    reached it is skipped, as a pool skips a cancelled work item; one already running finishes.

    A `submit_here` call may instead run on its caller's thread, when the hop is idle (see
    there). Order is kept by a count of the calls queued or running, taken with the submission
    under one lock, and by a lock the thread that runs calls holds while it does: an inline
    call starts only when the count is zero, takes the running lock before anyone can queue
    behind it, and whatever queues meanwhile waits for that lock.

    :meth:`close` runs everything queued before it, and waits for an inline call accepted
    before it, so no write accepted before the close is lost. The thread is a daemon so a
    forgotten hop cannot hang interpreter exit, and an exit hook closes (drains) every live
    hop first, as ``concurrent.futures`` does for its pools.
    """

    def __init__(
        self,
        name: str,
        group: Callable[..., AbstractContextManager[object]] | None = None,
        seat: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        """``group`` makes the context calls that queued up together run in (one transaction;
        ``group(optimistic=True)`` for lean calls, see `_run_group`); ``seat`` the context
        every call runs in, on the hop's thread or a caller's (the database's writer state:
        its held connection, `FastPath.seat`)."""
        self._seat = seat if seat is not None else contextlib.nullcontext
        # The third item is the caller's future, or a `_Callback`; the loop is None for a
        # `submit_here` call (answered on the thread that runs it).
        self._queue: SimpleQueue[tuple[Call, asyncio.AbstractEventLoop | None, Any] | None]
        self._queue = SimpleQueue()
        self._group = group
        self._lock = threading.Lock()
        self._closed = False
        #: Calls queued or running (under ``_lock``): an inline call needs none.
        self._pending = 0
        #: Held by the thread running calls (this hop's, or an inline caller's).
        self._running = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        _drain_at_exit(self)

    def submit(self, loop: asyncio.AbstractEventLoop, call: Callable[[], _T]) -> asyncio.Future[_T]:
        future: asyncio.Future[_T] = loop.create_future()
        self._put((call, loop, future))
        return future

    def submit_callback(
        self,
        loop: asyncio.AbstractEventLoop,
        call: Callable[[], _T],
        callback: Callable[[_T | None, BaseException | None], object],
    ) -> None:
        """Queue ``call``; ``callback(result, error)`` then runs on ``loop`` with its outcome.

        The cheap twin of :meth:`submit` for callers that need no future (the engine
        stream's lean operations): calls that ran in one group are answered in one loop
        callback, in the order queued.

        Raises:
            HopClosedError: After :meth:`close`.
        """
        self._put((call, loop, _Callback(callback)))

    def submit_here(
        self,
        call: Callable[[], _T],
        callback: Callable[[_T | None, BaseException | None], object],
        inline: bool = False,
    ) -> RunHere | None:
        """Queue ``call``; ``callback(result, error)`` then runs on the thread that ran it.

        For a caller on another thread that waits with a cheaper wake-up than a loop callback
        (the embedded engine's direct lane, `headwater_server.servicers.engine_direct`): the
        callback runs right after the call's group is committed, so it is never told "stored"
        early, and must be quick and thread-safe (and must not close the hop, which waits for
        it). The call always runs in a group, so several writes made by one call share one
        transaction.

        With ``inline``, when nothing is queued or running, the call is not queued: it is
        taken to run on the caller's thread, in the hop's place (its `seat`, the same group
        and answer), by the function returned, which the caller must call at once, once
        (every later call waits behind it), and after letting go of its own locks. For a
        caller that would block until the answer anyway: it saves two thread switches, the
        hand-over to the hop's thread and the wake-up back. None when the call was queued.

        Raises:
            HopClosedError: After :meth:`close`.
        """
        item = (call, None, _Here(callback))
        if inline and self._group is not None:
            with self._lock:
                if not self._pending and not self._closed:
                    # Nothing runs or waits, so the running lock is free: taken here, under
                    # the lock every submission takes, nothing can overtake this call.
                    self._pending = 1
                    taken = self._running.acquire(blocking=False)
                    assert taken, "the running lock is held with no call pending"
                    return functools.partial(self._run_here, item)
        self._put(item)
        return None

    def _run_here(self, item: tuple[Call, asyncio.AbstractEventLoop | None, Any]) -> None:
        """Run a `submit_here` call taken inline, on the caller's thread (the lock is held)."""
        try:
            with self._seat():
                self._run_group([item])
        finally:
            self._running.release()
            with self._lock:
                self._pending -= 1

    def _put(self, item: tuple[Call, asyncio.AbstractEventLoop | None, Any]) -> None:
        with self._lock:  # no call may slip in behind the stop marker
            if self._closed:
                raise HopClosedError("cannot run database calls after the database was closed")
            self._pending += 1
            self._queue.put(item)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _work(self) -> None:
        get = self._queue.get
        running = self._running
        with self._seat():
            while (item := get()) is not _STOP:
                with running:  # after an inline call taken before this one was queued
                    batch = [item]
                    stop = self._group is not None and self._take_waiting(batch)
                    if len(batch) == 1 and (self._group is None or type(item[2]) is not _Here):
                        call, loop, future = item
                        if not future.cancelled():
                            try:
                                result = call()
                            except BaseException as exc:  # delivered to the caller, as a pool
                                _deliver(loop, future, None, exc)
                            else:
                                _deliver(loop, future, result, None)
                            del call, future  # drop references to the result while waiting
                    else:
                        self._run_group(batch)
                # Released first: a count of zero means the running lock is free.
                with self._lock:
                    self._pending -= len(batch)
                del item, batch
                if stop:
                    break
        with running:  # an inline call accepted before the close finishes before it returns
            pass

    def _take_waiting(self, batch: list[Any]) -> bool:
        """Add the calls already queued behind the first to ``batch``; True if _STOP came."""
        get = self._queue.get_nowait
        while len(batch) < MAX_GROUP:
            try:
                item = get()
            except Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _run_group(self, batch: list[tuple[Call, asyncio.AbstractEventLoop | None, Any]]) -> None:
        """Run calls that were waiting together in one transaction, then answer them all.

        Each call's answer (or its own error) is delivered only after the group's commit, so
        nobody is told "stored" before it is; a failed commit fails every call of the group.
        A group of lean calls (`submit_callback`, `submit_here`: the engine stream's writes)
        runs first without a savepoint per write; if one of them fails, the group is rolled
        back and runs again with them (see `FastPath.group`).
        """
        optimistic = all(type(future) in _LEAN for _call, _loop, future in batch)
        outcomes = self._run_in_group(batch, optimistic)
        if outcomes is None:  # the optimistic group broke: again, with a savepoint per write
            outcomes = self._run_in_group(batch, False)
            assert outcomes is not None  # only an optimistic group breaks
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_call, loop, future), (result, error) in zip(batch, outcomes, strict=True):
            if loop is None:  # `submit_here`: answered on this thread, in queue order
                _resolve(future, result, error)
                continue
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, answers in by_loop.items():
            # RuntimeError: the loop is closed, so nobody is waiting for these answers any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, answers)

    def _run_in_group(
        self, batch: list[tuple[Call, asyncio.AbstractEventLoop | None, Any]], optimistic: bool
    ) -> list[tuple[Any, BaseException | None]] | None:
        """Each call's outcome, all in one group; None if the optimistic group broke."""
        assert self._group is not None
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            with self._group(optimistic=optimistic):
                for call, _loop, future in batch:
                    if future.cancelled():
                        outcomes.append((None, None))
                        continue
                    try:
                        outcomes.append((call(), None))
                    except GroupBroken:
                        raise
                    except BaseException as exc:
                        outcomes.append((None, exc))
        except GroupBroken:
            return None  # rolled back: nothing of it is stored
        except BaseException as exc:
            outcomes = [(None, exc)] * len(batch)
        return outcomes


def _deliver(
    loop: asyncio.AbstractEventLoop | None,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    if loop is None:  # `submit_here`: answered on this thread
        _resolve(future, result, error)
        return
    # RuntimeError: the loop is closed, so nobody is waiting for this answer any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future, result, error)


def _resolve_all(answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in answers:
        _resolve(future, result, error)


class _Callback:
    """A callback queued in place of a future (`WorkerHop.submit_callback`)."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any, BaseException | None], object]) -> None:
        self.function = function

    @staticmethod
    def cancelled() -> bool:
        return False


class _Here(_Callback):
    """A callback given to `WorkerHop.submit_here`: run on the thread that ran the call (the
    hop's, or its caller's), not on a loop."""

    __slots__ = ()


#: The queued answers of lean calls, whose groups may run optimistically (see `_run_group`).
_LEAN = (_Callback, _Here)


def _resolve(future: Any, result: Any, error: BaseException | None) -> None:
    if type(future) in _LEAN:
        try:
            future.function(result, error)
        except Exception:  # one caller's bug must not lose the other answers of its group
            logger.exception("A database call's callback failed")
        return
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


_live: weakref.WeakSet[WorkerHop] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _drain_at_exit(hop: WorkerHop) -> None:
    global _exit_hook_registered
    _live.add(hop)
    with _exit_hook_lock:
        if _exit_hook_registered:
            return
        _exit_hook_registered = True
    # threading's exit hooks run before the interpreter stops daemon threads (and after the
    # SDK's embedded server, registered later, has closed its database the normal way).
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython
        import atexit

        atexit.register(_close_all)
        return
    # RuntimeError: opened while the interpreter is already exiting; nothing left to hook.
    with contextlib.suppress(RuntimeError):
        register(_close_all)


def _close_all() -> None:
    for hop in list(_live):
        hop.close()

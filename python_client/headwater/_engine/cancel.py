"""Honouring ``CancelFlowRun``: watch a running flow run for CANCELLING and interrupt its code.

``CancelFlowRun`` only moves a RUNNING run to CANCELLING; the engine running it has to notice
and stop the code. Watching costs a stream per run, and most runs end in a millisecond, so a
run is watched only once it has lasted `WATCH_AFTER_SECONDS`: `CancelScope.__enter__` just
adds the run to a table (no I/O, no wake-up of another thread), and a ticker on the
transport's loop asks the transport to watch (`Transport.wait_for_cancelling`) the runs in the
table that are old enough. The ticker stops itself after a few idle seconds. There is one
table and ticker per loop, so a forked child, whose runtime starts a new loop, starts afresh.

When CANCELLING arrives, the run's code is interrupted the way a timeout interrupts it: a sync
run's thread gets `RunCancelled` raised asynchronously (at its next Python bytecode, so a
blocking C call finishes first), an async run's task is cancelled. The engine then proposes
CANCELLED. A subflow running in the interrupted code sees the same interrupt; it finds its
parent in `cancelled_ancestor` and reports itself CANCELLED too.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater._context import FlowRunContext
    from headwater._transport.interface import RunSnapshot, Transport

__all__ = [
    "WATCH_AFTER_SECONDS",
    "CancelScope",
    "RunCancelled",
    "TaskCancelScope",
    "cancelled_ancestor",
    "forget_cancelled",
    "stop_task_attempts",
]

#: A run is watched for cancellation once its code has run this long.
WATCH_AFTER_SECONDS = 0.5
#: How often the ticker looks for runs old enough to watch.
_TICK_SECONDS = 0.25
#: The ticker stops after this many ticks with no run in the table (restarted on demand).
_IDLE_TICKS = 20


class RunCancelled(BaseException):
    """Raised inside a sync run's code when its run was cancelled (internal to the SDK).

    A `BaseException`, like `headwater._engine.timeouts.RunTimeout`, so ``except Exception:``
    in user code cannot swallow it.
    """


#: Runs whose code is being interrupted by a cancellation: flow_run_id -> the reason. Subflows
#: interrupted by their parent's cancellation look their ancestors up here.
_cancelling: dict[str, str] = {}


def cancelled_ancestor(context: FlowRunContext | None) -> str | None:
    """The reason, when ``context``'s run or one of its ancestors is being cancelled."""
    while context is not None:
        reason = _cancelling.get(context.flow_run_id)
        if reason is not None:
            return reason
        context = context.parent
    return None


class CancelScope:
    """Watches one run for CANCELLING while the block (one attempt of the code) runs.

    Attributes:
        fired: True once this run's own cancellation interrupted the block.
        reason: The CANCELLING state's message (who cancelled it and why).
    """

    __slots__ = (
        "_async_loop",
        "_async_task",
        "_thread_id",
        "done",
        "fired",
        "flow_run_id",
        "reason",
        "run",
        "started_at",
        "transport",
        "watch_task",
        "watcher",
    )

    def __init__(
        self,
        transport: Transport,
        run: RunSnapshot,
        async_task: asyncio.Task[Any] | None = None,
    ) -> None:
        self.transport = transport
        self.watcher = _watcher_for(transport.loop)
        self.run = run
        self.flow_run_id = run.id
        self._async_task = async_task
        self._async_loop = async_task.get_loop() if async_task is not None else None
        self._thread_id = 0
        self.done = False
        self.fired = False
        self.reason = ""
        self.started_at = 0.0
        self.watch_task: asyncio.Task[None] | None = None

    def __enter__(self) -> CancelScope:
        self.started_at = time.monotonic()
        if self._async_task is None:
            self._thread_id = threading.get_ident()
        self.watcher.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pending = self.watcher.remove(self, delivered=exc_type is RunCancelled)
        if pending:
            # The code finished before the interrupt landed: withdraw it before it hits the
            # engine code that reports the (real, completed) result.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
        if self.fired:
            _cancelling.pop(self.flow_run_id, None)

    def cancel_requested(self, reason: str) -> None:
        """Interrupt the block (called on the background loop when CANCELLING arrives)."""
        reason = reason or "The run was cancelled."
        if self._async_task is None:
            with self.watcher.lock:
                if self.done:
                    return
                self._mark(reason)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread_id), ctypes.py_object(RunCancelled)
                )
        else:
            assert self._async_loop is not None
            self._async_loop.call_soon_threadsafe(self._cancel_task, reason)

    def _cancel_task(self, reason: str) -> None:
        # On the run's own loop, where the block also ends: no race with `__exit__`.
        if self.done or self._async_task is None:
            return
        self._mark(reason)
        self._async_task.cancel()

    def _mark(self, reason: str) -> None:
        self.fired = True
        self.reason = reason
        _cancelling[self.flow_run_id] = reason
        stop_task_attempts(
            self.flow_run_id, f"The flow run was cancelled: {reason}", self._thread_id
        )


#: Guards the task scopes below and their interrupts.
_tasks_lock = threading.Lock()
#: Sync task attempts running in other threads than their flow run's: flow_run_id -> scopes.
_task_scopes: dict[str, set[TaskCancelScope]] = {}
#: Flow runs whose cancellation was delivered, until the engine has ended their task runs:
#: a task attempt starting meanwhile (a worker picked it up late) is cancelled at once.
_cancelled_runs: dict[str, str] = {}


class TaskCancelScope:
    """Lets a flow run's cancellation interrupt a sync task attempt running in another thread.

    A submitted task runs in a worker thread, which the flow run's own interrupt does not
    reach. While the attempt runs, this scope is registered under the flow run; when the flow
    run's `CancelScope` fires (or the flow run times out), `stop_task_attempts` raises
    `RunCancelled` in the attempt's thread too (at its next Python bytecode), and the task run
    is reported CANCELLED. A task called inline in the
    flow's own thread is left to the flow's interrupt, as is a task nested inside another task
    in the same thread (the outer one is the one interrupted).

    Attributes:
        fired: True once the flow run's cancellation interrupted (or refused) the attempt.
        reason: Why, for the CANCELLED state's message.
    """

    __slots__ = ("done", "fired", "flow_run_id", "reason", "registered", "thread_id")

    def __init__(self, flow_run_id: str | None) -> None:
        self.flow_run_id = flow_run_id
        self.thread_id = 0
        self.done = False
        self.fired = False
        self.registered = False
        self.reason = ""

    def __enter__(self) -> TaskCancelScope:
        flow_run_id = self.flow_run_id
        if flow_run_id is None:
            return self
        self.thread_id = threading.get_ident()
        with _tasks_lock:
            reason = _cancelled_runs.get(flow_run_id)
            if reason is None:
                scopes = _task_scopes.setdefault(flow_run_id, set())
                if not any(scope.thread_id == self.thread_id for scope in scopes):
                    scopes.add(self)
                    self.registered = True
                return self
            self.fired = True
            self.reason = reason
        raise RunCancelled(self.reason)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.registered:
            return
        assert self.flow_run_id is not None
        with _tasks_lock:
            self.done = True
            scopes = _task_scopes.get(self.flow_run_id)
            if scopes is not None:
                scopes.discard(self)
                if not scopes:
                    del _task_scopes[self.flow_run_id]
            pending = self.fired and exc_type is not RunCancelled
        if pending:
            # The attempt ended before the interrupt landed: withdraw it (see `CancelScope`).
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)


def stop_task_attempts(flow_run_id: str, reason: str, flow_thread_id: int = 0) -> None:
    """Interrupt the flow run's sync task attempts in other threads; refuse later ones.

    Each is reported CANCELLED with ``reason`` (the flow run was cancelled, or timed out).
    Attempts in ``flow_thread_id`` (the flow's own thread) are left to the flow's interrupt.
    Refusing lasts until `forget_cancelled`.
    """
    with _tasks_lock:
        _cancelled_runs[flow_run_id] = reason
        for scope in _task_scopes.get(flow_run_id, ()):
            if scope.done or scope.fired or scope.thread_id == flow_thread_id:
                continue
            scope.fired = True
            scope.reason = reason
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(scope.thread_id), ctypes.py_object(RunCancelled)
            )


def forget_cancelled(flow_run_id: str) -> None:
    """The flow run's task runs have all ended: stop refusing its task attempts."""
    with _tasks_lock:
        _cancelled_runs.pop(flow_run_id, None)


class _Watcher:
    """The table of running blocks on one loop, and the ticker that starts their watches.

    Its one lock also orders a sync block's end against its interrupt (`CancelScope`), so a
    block costs two uncontended lock round trips and nothing else.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.scopes: dict[int, CancelScope] = {}
        self.ticking = False
        self.idle_ticks = 0

    def add(self, scope: CancelScope) -> None:
        with self.lock:
            self.scopes[id(scope)] = scope
            start = not self.ticking
            if start:
                self.ticking = True
                self.idle_ticks = 0
        if start:
            self.loop.call_soon_threadsafe(self._schedule, self.loop)

    def remove(self, scope: CancelScope, delivered: bool) -> bool:
        """Forget ``scope`` (its block ended); True when its sync interrupt is still pending."""
        with self.lock:
            scope.done = True
            del self.scopes[id(scope)]
            task = scope.watch_task
            pending = scope.fired and scope._async_task is None and not delivered
        if task is not None and not task.done():
            task.get_loop().call_soon_threadsafe(task.cancel)
        return pending

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_later(_TICK_SECONDS, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the background loop: start a watch for each block that has run long enough."""
        now = time.monotonic()
        with self.lock:
            if not self.scopes:
                self.idle_ticks += 1
                if self.idle_ticks >= _IDLE_TICKS:
                    self.ticking = False
                    return
            else:
                self.idle_ticks = 0
            for scope in self.scopes.values():
                if scope.watch_task is None and now - scope.started_at >= WATCH_AFTER_SECONDS:
                    scope.watch_task = loop.create_task(
                        _watch(scope), name=f"headwater-cancel-watch-{scope.flow_run_id}"
                    )
        self._schedule(loop)


#: One watcher per loop; a runtime has one loop (a forked child's runtime starts a new one).
_watchers: dict[asyncio.AbstractEventLoop, _Watcher] = {}
_watchers_lock = threading.Lock()


def _watcher_for(loop: asyncio.AbstractEventLoop) -> _Watcher:
    watcher = _watchers.get(loop)
    if watcher is None:
        with _watchers_lock:
            watcher = _watchers.get(loop)
            if watcher is None:
                watcher = _watchers[loop] = _Watcher(loop)
    return watcher


async def _watch(scope: CancelScope) -> None:
    """Wait until the run is CANCELLING (then interrupt the block) or leaves RUNNING.

    The watch starts after the run's latest event as the service last reported it, so it
    misses nothing; the run's view is built only here, for the few runs that last this long.
    """
    after_sequence = scope.run.flow_run().last_sequence
    reason = await scope.transport.wait_for_cancelling(scope.flow_run_id, after_sequence)
    if reason is not None and not scope.done:
        scope.cancel_requested(reason)

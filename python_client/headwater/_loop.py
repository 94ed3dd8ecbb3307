"""The SDK's background event loop: one daemon thread per process running asyncio.

The engine stream and the embedded server are asyncio code (grpc.aio), while flows are called
from plain synchronous code. Running them on one loop in one background thread lets any thread
talk to them, and keeps the embedded server and its client on the same loop, so a request
crosses no extra thread between them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import gc
import os
import threading
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["get_background_loop", "register_exit_hook", "run_sync"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()
_exiting = False


def _ignore_grpc_shutdown_race(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop one known-harmless error; report everything else as asyncio would.

    When the last grpc.aio object in a process closes (the embedded server stopping at exit),
    gRPC closes its completion queue's file descriptor while a wake-up it scheduled on this loop
    is still queued; that callback then fails with EBADF. Nothing is lost, so the traceback
    would only alarm people.
    """
    error = context.get("exception")
    if isinstance(error, OSError) and error.errno == errno.EBADF:
        frames = traceback.extract_tb(error.__traceback__)
        if frames and "completion_queue" in frames[-1].filename:
            return
    loop.default_exception_handler(context)


def _run(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_ignore_grpc_shutdown_race)
    loop.call_soon(started.set)
    loop.run_forever()


def get_background_loop() -> asyncio.AbstractEventLoop:
    """The process's background loop, started on first use.

    The thread is a daemon so an SDK user never has to stop it; the connection and the embedded
    server close themselves at interpreter exit, while the loop still runs.
    """
    global _loop, _thread
    loop = _loop
    if loop is not None and not _exiting:
        return loop
    if _exiting:
        # Waiting on a stopped loop would hang the exiting process forever.
        raise RuntimeError("Headwater's background loop has stopped: the interpreter is exiting.")
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(
                target=_run, args=(loop, started), name="headwater-loop", daemon=True
            )
            thread.start()
            started.wait()
            _thread = thread
            _loop = loop
            # Registered before the server's and the connection's hooks, so it runs after them.
            register_exit_hook(_stop_at_exit)
        return _loop


def in_background_loop() -> bool:
    """Whether the caller runs on the background loop's thread (where blocking would deadlock)."""
    return _thread is not None and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine on the background loop and wait for its result from this thread.

    Raises:
        RuntimeError: When called from the background loop itself, where waiting would block
            the loop that has to do the work.
    """
    if in_background_loop():
        coro.close()
        raise RuntimeError(
            "run_sync() was called on Headwater's background loop; await the coroutine instead."
        )
    future = asyncio.run_coroutine_threadsafe(coro, get_background_loop())
    return future.result(timeout)


def register_exit_hook(hook: Callable[[], object]) -> None:
    """Run ``hook`` when the interpreter exits, while thread pools still accept work.

    A plain `atexit` hook runs after `concurrent.futures` has shut every thread pool down, and
    the embedded server does its database work in one, so stopping it (or flushing log lines
    it still has to store) there fails with "cannot schedule new futures after shutdown".
    Hooks registered here run first, in reverse order of registration, like `atexit`'s.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython: the best we can do
        atexit.register(hook)
        return
    register(hook)


def _stop_at_exit() -> None:
    """Cancel what is left on the loop and stop it before the interpreter tears gRPC down.

    A loop still running while gRPC closes its completion queue prints a "Bad file descriptor"
    traceback at exit.
    """
    global _exiting
    loop, thread = _loop, _thread
    _exiting = True
    if loop is None or thread is None or not thread.is_alive():
        return

    async def _cancel_remaining() -> None:
        current = asyncio.current_task()
        remaining = [task for task in asyncio.all_tasks() if task is not current]
        for task in remaining:
            task.cancel()
        await asyncio.gather(*remaining, return_exceptions=True)

    # Best effort at exit: stopping the loop matters more than a task that will not cancel.
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(_cancel_remaining(), loop).result(timeout=2)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=2)
    _skip_teardown_collection()


def _skip_teardown_collection() -> None:
    """Spare the exiting interpreter a slow garbage collection of everything ever imported.

    After the exit hooks, CPython tears its modules down and runs full garbage collections over
    every object still alive; with the server's stack loaded (SQLAlchemy, pydantic, gRPC,
    protobuf) that takes 100-150 ms here, a sixth of a cold start, to free memory the operating
    system reclaims anyway. Freezing moves the surviving objects out of the collector's sight.
    Objects still referenced are released as their modules are cleared, as before; only
    reference cycles that were alive at exit are not collected, and Python never promised to
    finalize those (see ``object.__del__``). Objects created afterwards (by later `atexit`
    handlers) are collected normally.
    """
    gc.freeze()


def _forget_after_fork() -> None:
    """A forked child has no loop thread; it starts its own on first use."""
    global _loop, _thread, _lock, _exiting
    _loop = None
    _thread = None
    _lock = threading.Lock()
    _exiting = False


os.register_at_fork(after_in_child=_forget_after_fork)

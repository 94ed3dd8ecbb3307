"""`BackgroundLoop`: one daemon thread running asyncio, where the SDK's gRPC code lives.

The engine stream and the embedded server are asyncio code (grpc.aio), while flows are called
from plain synchronous code. Running them on one loop in one background thread lets any thread
talk to them, and keeps the embedded server and its client on the same loop, so a request
crosses no extra thread between them.

This module holds no process-wide state: `headwater._transport.runtime` owns the process's one
loop (and starts, stops and forgets it on fork).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import threading
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


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


class BackgroundLoop:
    """An asyncio loop in a daemon thread, started on construction.

    The thread is a daemon so an SDK user never has to stop it; the runtime stops it at
    interpreter exit, after the connections and the embedded server have closed.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(
            target=_run, args=(self.loop, started), name="headwater-loop", daemon=True
        )
        self.thread.start()
        started.wait()
        self.stopped = False

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's thread (where blocking would deadlock)."""
        return threading.current_thread() is self.thread

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result from this thread.

        Raises:
            RuntimeError: Called from the loop's own thread, where waiting would block the
                loop that has to do the work, or after the loop stopped (interpreter exit).
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "run_sync() was called on Headwater's background loop; await the coroutine instead."
            )
        if self.stopped:
            coro.close()
            # Waiting on a stopped loop would hang the exiting process forever.
            raise RuntimeError(
                "Headwater's background loop has stopped: the interpreter is exiting."
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        """Cancel what is left on the loop and stop it before the interpreter tears gRPC down.

        A loop still running while gRPC closes its completion queue prints a "Bad file
        descriptor" traceback at exit.
        """
        if self.stopped:
            return
        loop, thread = self.loop, self.thread
        if thread.is_alive():

            async def _cancel_remaining() -> None:
                current = asyncio.current_task()
                remaining = [task for task in asyncio.all_tasks() if task is not current]
                for task in remaining:
                    task.cancel()
                await asyncio.gather(*remaining, return_exceptions=True)

            # Best effort at exit: stopping the loop matters more than a stubborn task.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_remaining(), loop).result(timeout=2)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=2)
        self.stopped = True


def skip_teardown_collection() -> None:
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

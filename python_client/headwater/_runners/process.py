"""`ProcessPoolTaskRunner`: submitted tasks run in a pool of spawned Python processes.

Each child opens its own stream to the flow run's service (the embedded one's abstract unix
socket, or ``HEADWATER_API_URL``'s server) and reports its task runs' states itself; the parent
keeps the futures. Children are spawned, never forked: the parent runs gRPC and event-loop
threads that a forked child would inherit in an unknown state.

When a child dies mid-task, `concurrent.futures` breaks the whole pool and stops its other
children. The parent then ends every task run that had started CRASHED, naming the process
that ran it, ships the calls that never started to a fresh pool, and carries on.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Self

from headwater._runners.child import run_shipped
from headwater._runners.crash import process_died, stopped_short
from headwater._runners.dispatch import Dispatcher
from headwater.task_runners import TaskRunner

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from multiprocessing.queues import SimpleQueue
    from types import TracebackType

    from headwater._engine.calls import TaskCall
    from headwater._engine.runnable import TaskRunnable
    from headwater.futures import TaskRunFuture

__all__ = ["ProcessPool", "ProcessPoolTaskRunner"]

#: Set in each child by the pool's initializer: where it announces the calls it starts.
_announce: SimpleQueue[tuple[str, int] | None] | None = None


class ProcessPoolTaskRunner(TaskRunner):
    """Runs submitted tasks in a pool of spawned processes, for CPU-bound work.

    Each child reports its task runs' states to the flow run's service itself (see
    `headwater._runners`); arguments and results travel pickled (cloudpickle), and a future
    passed as an argument is resolved in the flow's process first. If a child dies mid-task,
    that task run ends CRASHED and its future's result raises `CrashedRun`.

    Because children are spawned, a script whose flow uses this runner must guard its entry
    point with ``if __name__ == "__main__":``.

    Args:
        max_workers: The most processes to run at once; ``None`` means one per CPU.
        initializer: Called once in each child as it starts, before any of its tasks (to open
            a connection, load a model...), as ``concurrent.futures``' initializer is; it is
            pickled by reference, so it must be a module-level function.
        initargs: The arguments ``initializer`` is called with.

    Raises:
        ValueError: ``max_workers`` is not a positive integer.
        TypeError: ``initializer`` is not callable.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        super().__init__()
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise ValueError(
                f"max_workers must be a positive integer or None; got {max_workers!r}."
            )
        if initializer is not None and not callable(initializer):
            raise TypeError(
                f"initializer must be a function called in each child; got "
                f"{type(initializer).__name__}."
            )
        self.max_workers = max_workers
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self._pool: ProcessPool | None = None

    def __enter__(self) -> Self:
        super().__enter__()
        self._pool = ProcessPool(self.max_workers, self.initializer, self.initargs)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        try:
            if pool is not None:
                # An interrupt (Ctrl-C, SIGTERM, cancellation) drops the calls no child has
                # started; started ones end (or crash) and report.
                pool.close(interrupted=exc_type is not None and not issubclass(exc_type, Exception))
        finally:
            super().__exit__(exc_type, exc_value, traceback)

    def submit(
        self,
        task: TaskRunnable,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
        dependencies: dict[str, Any] | None = None,
    ) -> TaskRunFuture[Any]:
        pool = self._pool
        if pool is None:
            raise self._not_started()
        return pool.dispatcher.submit_task(task, parameters, wait_for)


class ProcessPool:
    """The processes of one `ProcessPoolTaskRunner`, started on first use.

    It is the runner's `headwater._runners.dispatch.Backend`: it ships calls to the children,
    replaces the pool when a child died, and says which process ran a call that was lost.
    """

    def __init__(
        self,
        max_workers: int | None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._initializer = initializer
        self._initargs = initargs
        self.dispatcher = Dispatcher(self, preparers=self.max_workers)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._started: SimpleQueue[tuple[str, int] | None] | None = None
        self._reader: threading.Thread | None = None
        #: task_run_id -> the pid of the child that started it (until its answer arrives).
        self._pids: dict[str, int] = {}

    def check_reachable(self, address: str) -> None:
        """Children run on this machine, where every service address the flow uses works."""

    def ship(self, call: TaskCall, payload: bytes, address: str) -> Future[bytes]:
        """Run ``payload`` in a child; a pool broken by a dead child is replaced first."""
        with self._lock:
            executor = self._executor or self._start()
            try:
                future = executor.submit(_run_in_child, payload, address, call.task_run_id)
            except BrokenProcessPool:
                executor.shutdown(wait=False, cancel_futures=True)
                future = self._start().submit(_run_in_child, payload, address, call.task_run_id)
        # A call that came back needs no pid; a lost one keeps it for `lost` to name.
        future.add_done_callback(
            lambda done: done.exception() is None and self._pids.pop(call.task_run_id, None)
        )
        return future

    def lost(self, call: TaskCall, error: BaseException | None) -> tuple[str, bool]:
        """The CRASHED message for a call whose child died (or raised), and whether it died."""
        pid = self._pids.pop(call.task_run_id, None)
        where = f"pid {pid}" if pid is not None else "a process-pool child"
        if isinstance(error, BrokenProcessPool):
            detail = (
                "A child of the ProcessPoolTaskRunner died, and the pool stopped every child "
                "it had, this one included."
            )
            if self._initializer is not None:
                detail += " If the runner's initializer raised, the child's error output says so."
            return process_died(where, detail), True
        return stopped_short(where, error), False

    def close(self, interrupted: bool = False) -> None:
        """Wait for every submitted call to end, then stop the children.

        Args:
            interrupted: Drop the calls no child has started first.
        """
        if interrupted:
            with self._lock:
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
        self.dispatcher.wait()
        with self._lock:
            executor, self._executor = self._executor, None
            started, self._started = self._started, None
            reader, self._reader = self._reader, None
        if executor is not None:
            executor.shutdown(wait=True)
        if started is not None and reader is not None:
            started.put(None)
            reader.join()
            started.close()

    def _start(self) -> ProcessPoolExecutor:
        """A new pool (the first, or one replacing a pool that broke); under ``_lock``."""
        if self._started is None:
            started: SimpleQueue[tuple[str, int] | None] = self._context.SimpleQueue()
            self._started = started
            self._reader = threading.Thread(
                target=self._read_started,
                args=(started,),
                name="headwater-process-pool-starts",
                daemon=True,
            )
            self._reader.start()
        self._executor = ProcessPoolExecutor(
            self.max_workers,
            mp_context=self._context,
            initializer=_child_started,
            initargs=(self._started, self._initializer, self._initargs),
        )
        return self._executor

    def _read_started(self, started: SimpleQueue[tuple[str, int] | None]) -> None:
        """Note which child started which call, so a lost call names its process."""
        while True:
            item = started.get()
            if item is None:
                return
            task_run_id, pid = item
            self._pids[task_run_id] = pid


def _child_started(
    started: SimpleQueue[tuple[str, int] | None],
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> None:
    """In each child, once: keep the queue its calls are announced on, then run the runner's
    initializer (a failure stops the child, and the pool with it, as concurrent.futures does)."""
    global _announce
    _announce = started
    if initializer is None:
        return
    try:
        initializer(*initargs)
    except BaseException as exc:
        name = getattr(initializer, "__qualname__", repr(initializer))
        print(
            f"headwater: the ProcessPoolTaskRunner initializer {name} raised in process "
            f"{os.getpid()}: {type(exc).__name__}: {exc}. No task can run in this pool; fix the "
            "initializer.",
            file=sys.stderr,
        )
        raise


def _run_in_child(payload: bytes, address: str, task_run_id: str) -> bytes:
    """In a child: announce the call (so its pid is known if it dies), then run it."""
    if _announce is not None:
        _announce.put((task_run_id, os.getpid()))
    return run_shipped(payload, address)

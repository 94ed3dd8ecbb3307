"""Futures: handles on task runs submitted to a task runner (as ``prefect.futures``).

`Task.submit` returns a `TaskRunFuture` (also known by Prefect's name, `PrefectFuture`) and
`Task.map` a `PrefectFutureList` of them. A future knows its task run's id from the moment it
is returned; its `~TaskRunFuture.result` waits for the run and returns its value or raises its
exception. `wait` and `as_completed` work on several futures at once, and
`resolve_futures_to_states` / `resolve_futures_to_results` replace the futures inside nested
lists, tuples, sets and dicts.

Example:
    >>> from headwater import flow, task
    >>> from headwater.futures import wait
    >>> @task
    ... def square(x: int) -> int:
    ...     return x * x
    >>> @flow
    ... def squares() -> list[int]:
    ...     futures = [square.submit(n) for n in range(4)]
    ...     done, not_done = wait(futures, timeout=10)
    ...     return [future.result() for future in futures]
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextlib
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from headwater._states import Cancelled, Crashed, Pending, Running, State

__all__ = [
    "ConcurrentTaskRunFuture",
    "DoneAndNotDoneFutures",
    "PrefectConcurrentFuture",
    "PrefectFuture",
    "PrefectFutureList",
    "TaskRunFuture",
    "as_completed",
    "resolve_futures_to_results",
    "resolve_futures_to_states",
    "wait",
]

R = TypeVar("R")
T = TypeVar("T")


class TaskRunFuture(abc.ABC, Generic[R]):
    """A task run that was submitted to a task runner and may not have finished yet.

    Subclasses say how to wait for the run; everything else is built on `wait`, `state` and
    `add_done_callback`.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def task_run_id(self) -> str:
        """The task run's id, known (chosen by the client) when the future is returned."""

    @property
    @abc.abstractmethod
    def state(self) -> State[R]:
        """The run's current state as this process knows it; its final state once done."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> None:
        """Block until the run has ended, or ``timeout`` seconds have passed (no error then)."""

    @abc.abstractmethod
    def add_done_callback(self, fn: Callable[[TaskRunFuture[R]], object]) -> None:
        """Call ``fn(future)`` once the run has ended (at once if it already has)."""

    def done(self) -> bool:
        """True once the run has reached its final state."""
        return self.state.is_final()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """Wait for the run and return its result.

        Args:
            timeout: The most seconds to wait; None waits as long as it takes.
            raise_on_failure: When False, a failed run's exception is returned, not raised.

        Raises:
            TimeoutError: The run had not ended after ``timeout`` seconds.
            UpstreamTaskError: The run never ran because a run it depended on did not complete.
            Exception: Whatever the task raised (with ``raise_on_failure``).
        """
        self.wait(timeout)
        state = self.state
        if not state.is_final():
            raise TimeoutError(
                f"Task run {self.task_run_id} did not finish within {timeout} seconds; it is "
                f"{state.name}. Wait longer, or check on it later with future.state."
            )
        return state.result(raise_on_failure=raise_on_failure)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_run_id={self.task_run_id!r}, state={self.state!r})"


#: Prefect's name for a future.
PrefectFuture = TaskRunFuture


class ConcurrentTaskRunFuture(TaskRunFuture[R]):
    """A future over a `concurrent.futures.Future` whose value is the run's final `State`.

    What thread and process pools return: the pool runs the task call and the call returns the
    final state (it never raises for a failed run). A call that raised anyway (it lost the
    service) shows as a Crashed state carrying that exception; one cancelled before it started
    (its flow run ended first) as Cancelled.
    """

    __slots__ = ("_task_run_id", "task_name", "wrapped")

    def __init__(
        self,
        task_run_id: str,
        wrapped: concurrent.futures.Future[State[R]],
        task_name: str = "",
    ) -> None:
        self._task_run_id = task_run_id
        self.wrapped = wrapped
        #: The task's name, for messages about this run (such as a downstream's NotReady).
        self.task_name = task_name

    @property
    def task_run_id(self) -> str:
        return self._task_run_id

    @property
    def state(self) -> State[R]:
        wrapped = self.wrapped
        if not wrapped.done():
            return Running() if wrapped.running() else Pending()
        if wrapped.cancelled():
            return Cancelled(
                message="The task run was not started: its flow run ended before a worker was free."
            )
        error = wrapped.exception()
        if error is not None:
            message = f"The task run crashed: {type(error).__name__}: {error}"
            return Crashed(data=error, message=message)
        return wrapped.result()

    def done(self) -> bool:
        return self.wrapped.done()

    def wait(self, timeout: float | None = None) -> None:
        wrapped = self.wrapped
        deadline = None if timeout is None else time.monotonic() + timeout
        while not wrapped.done():
            remaining = _step(deadline)
            if remaining <= 0:
                return
            # The future's own condition: `concurrent.futures.wait` would build a waiter,
            # an event and a lock for this one future, several times the cost.
            with contextlib.suppress(TimeoutError, concurrent.futures.CancelledError):
                wrapped.exception(timeout=remaining)

    def add_done_callback(self, fn: Callable[[TaskRunFuture[R]], object]) -> None:
        self.wrapped.add_done_callback(lambda _: fn(self))


#: Prefect's name for a future from a thread pool.
PrefectConcurrentFuture = ConcurrentTaskRunFuture


class PrefectFutureList(list[TaskRunFuture[R]]):
    """The futures `Task.map` returns, one per call, in the order of the mapped items."""

    def wait(self, timeout: float | None = None) -> None:
        """Block until every run has ended, or ``timeout`` seconds have passed."""
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every run's result, in order, once all have ended.

        Raises:
            TimeoutError: Some run had not ended after ``timeout`` seconds.
            Exception: The first failed run's exception (with ``raise_on_failure``).
        """
        _, not_done = wait(self, timeout=timeout)
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} of {len(self)} task runs had not finished after {timeout} "
                "seconds. Wait longer, or collect the finished ones with headwater.futures.wait."
            )
        return [future.result(raise_on_failure=raise_on_failure) for future in self]


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    """What `wait` returns: the futures that ended, and those that had not when it returned."""

    done: set[TaskRunFuture[R]]
    not_done: set[TaskRunFuture[R]]


def wait(
    futures: Iterable[TaskRunFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait until every future has ended, or ``timeout`` seconds have passed.

    Never raises for a timeout: what had not ended is in ``not_done``. A future given twice
    appears once.

    Example:
        >>> done, not_done = wait(slow.map(range(10)), timeout=5)  # doctest: +SKIP
    """
    pending = set(futures)
    done = {future for future in pending if future.done()}
    pending -= done
    if not pending:
        return DoneAndNotDoneFutures(done, pending)
    finished: queue.SimpleQueue[TaskRunFuture[R]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        try:
            future = _next_finished(finished, deadline)
        except queue.Empty:
            break
        if future in pending:
            pending.discard(future)
            done.add(future)
    return DoneAndNotDoneFutures(done, pending)


def as_completed(
    futures: Iterable[TaskRunFuture[R]], timeout: float | None = None
) -> Iterator[TaskRunFuture[R]]:
    """Yield each future as its run ends (those already ended first); duplicates once.

    Raises:
        TimeoutError: ``timeout`` seconds passed (counted from the call) with runs unfinished.
    """
    pending = set(futures)
    total = len(pending)
    deadline = None if timeout is None else time.monotonic() + timeout
    finished: queue.SimpleQueue[TaskRunFuture[R]] = queue.SimpleQueue()
    for future in [future for future in pending if future.done()]:
        pending.discard(future)
        yield future
    for future in pending:
        future.add_done_callback(finished.put)
    while pending:
        try:
            future = _next_finished(finished, deadline)
        except queue.Empty:
            raise TimeoutError(
                f"{len(pending)} (of {total}) futures unfinished after {timeout} seconds"
            ) from None
        if future in pending:
            pending.discard(future)
            yield future


#: The longest a wait blocks in one go. Waiting in steps lets an interrupt raised in the waiting
#: thread (a run's cancellation or timeout, delivered at its next Python bytecode) land at once
#: instead of after the awaited run ends.
_WAIT_STEP_SECONDS = 0.1


def _step(deadline: float | None) -> float:
    """How long the next step of a wait may block (<= 0 once ``deadline`` has passed)."""
    if deadline is None:
        return _WAIT_STEP_SECONDS
    return min(deadline - time.monotonic(), _WAIT_STEP_SECONDS)


def _next_finished(finished: queue.SimpleQueue[T], deadline: float | None) -> T:
    """The next finished future, waiting in steps; `queue.Empty` once ``deadline`` passed."""
    while True:
        remaining = _step(deadline)
        if remaining <= 0:
            return finished.get_nowait()
        try:
            return finished.get(timeout=remaining)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def resolve_futures_to_states(expr: Any) -> Any:
    """``expr`` with every future inside (nested lists, tuples, sets, dicts) replaced by its
    final state, waiting for the runs to end. Other objects are returned as they are.
    """
    futures = list(_futures_in(expr))
    wait(futures)
    return _replace_futures(expr, lambda future: future.state)


def resolve_futures_to_results(expr: Any) -> Any:
    """``expr`` with every future inside replaced by its result (waiting for the runs).

    Raises:
        Exception: A run's exception, when one failed.
    """
    futures = list(_futures_in(expr))
    wait(futures)
    return _replace_futures(expr, lambda future: future.result())


def _futures_in(expr: Any) -> Iterator[TaskRunFuture[Any]]:
    """Every future inside ``expr`` (not inside a `quote`)."""
    from headwater._annotations import BaseAnnotation, quote

    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, TaskRunFuture):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, BaseAnnotation) and not isinstance(item, quote):
            stack.append(item.value)


def _replace_futures(expr: Any, replace: Callable[[TaskRunFuture[Any]], Any]) -> Any:
    """A copy of ``expr`` with ``replace(future)`` for each future (same container types)."""
    from headwater._annotations import BaseAnnotation, quote

    if isinstance(expr, TaskRunFuture):
        return replace(expr)
    if isinstance(expr, dict):
        items = {
            _replace_futures(key, replace): _replace_futures(value, replace)
            for key, value in expr.items()
        }
        return items if type(expr) is dict else _same_type(expr, items)
    if isinstance(expr, tuple) and hasattr(expr, "_fields"):  # a named tuple
        return type(expr)(*(_replace_futures(item, replace) for item in expr))
    if isinstance(expr, list | tuple | set | frozenset):
        return _same_type(expr, [_replace_futures(item, replace) for item in expr])
    if isinstance(expr, BaseAnnotation) and not isinstance(expr, quote):
        return expr.rewrap(_replace_futures(expr.value, replace))
    return expr


def _same_type(original: Any, items: Any) -> Any:
    """``items`` in ``original``'s container type, or the plain built-in one when that type
    cannot be built from items alone (a ``defaultdict``, say)."""
    try:
        return type(original)(items)
    except TypeError:
        for base in (dict, list, tuple, set, frozenset):
            if isinstance(original, base):
                return base(items)
        raise

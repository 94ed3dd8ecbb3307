"""Task runners: how a flow runs the tasks it submits (as ``prefect.task_runners``).

A flow run uses its flow's runner (a `ThreadPoolTaskRunner` unless the flow names another):
each run gets its own copy (`TaskRunner.duplicate`), entered when the run's code first submits
a task and exited before the run's state is proposed. Exiting waits until every submitted task
run has ended, so by the time the service decides a flow run's final state, every task run it
submitted is stored in its final state.

A runner starts each call with `headwater._engine.calls.run_task_call`, which reports the
task run's states to the service itself; so a runner only decides *where* calls run.

Example:
    >>> from headwater import flow, task
    >>> from headwater.task_runners import ThreadPoolTaskRunner
    >>> @task
    ... def fetch(url: str) -> int: ...
    >>> @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    ... def crawl(urls: list[str]) -> list[int]:
    ...     return fetch.map(urls).result()
"""

from __future__ import annotations

import abc
import contextvars
import functools
import io
import sys
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Iterable
    from types import TracebackType

    from headwater._engine.early import EarlyStarts
    from headwater._engine.runnable import TaskRunnable
    from headwater.futures import PrefectFutureList, TaskRunFuture

# DaskTaskRunner, ProcessPoolTaskRunner and the Dask clients come from `__getattr__` (see the
# end of the module).
__all__ = [
    "DaskTaskRunner",  # noqa: F822
    "ProcessPoolTaskRunner",  # noqa: F822
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "get_async_dask_client",  # noqa: F822
    "get_dask_client",  # noqa: F822
]


class TaskRunner(abc.ABC):
    """Base class for task runners: where submitted task calls run.

    A runner is a context manager: `submit` works between `__enter__` and `__exit__`, and
    `__exit__` returns only once every submitted run has ended. Subclasses implement `submit`;
    `map` is built on it here.
    """

    def __init__(self) -> None:
        self._started = False

    @property
    def name(self) -> str:
        """A short name for logs: the class name without ``TaskRunner``, lower-cased."""
        return type(self).__name__.removesuffix("TaskRunner").lower() or "taskrunner"

    def duplicate(self) -> Self:
        """Return an unused runner with the same settings; each flow run gets its own."""
        return type(self)(**self._settings())

    def _settings(self) -> dict[str, Any]:
        """The constructor arguments this runner was made with (its public attributes)."""
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def _not_started(self) -> RuntimeError:
        """What `submit` raises before the runner was entered (flows enter theirs themselves)."""
        return RuntimeError(
            f"The {type(self).__name__} must be started before submitting work: use it as a "
            "context manager (with runner: ...), as flows do."
        )

    @abc.abstractmethod
    def submit(
        self,
        task: TaskRunnable,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
        dependencies: dict[str, Any] | None = None,
    ) -> TaskRunFuture[Any]:
        """Start one call of ``task`` and return its future at once.

        Args:
            task: The task to run.
            parameters: Its inputs by name; futures inside resolve to their results first.
            wait_for: Futures that must end before the run starts.
            dependencies: Accepted for Prefect compatibility; unused.
        """

    def map(
        self,
        task: TaskRunnable,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
    ) -> PrefectFutureList[Any]:
        """Submit one call of ``task`` per item of the iterable parameters.

        Iterable parameters (anything iterable but a string, bytes or a file) are iterated in
        step; the others, and those wrapped in `unmapped`, go whole to every call. A future
        given as a parameter is waited for and its result used. `allow_failure` and `quote`
        wrappers are kept around each item.

        Raises:
            MappingMissingIterable: No parameter is iterable.
            MappingLengthMismatch: The iterable parameters differ in length.
        """
        from headwater._annotations import BaseAnnotation, allow_failure, quote, unmapped
        from headwater.futures import PrefectFutureList, TaskRunFuture

        iterable: dict[str, list[Any]] = {}
        static: dict[str, Any] = {}
        wrappers: dict[str, BaseAnnotation[Any]] = {}
        for key, value in parameters.items():
            if isinstance(value, allow_failure | quote):
                wrappers[key] = value
                value = value.unwrap()
            if isinstance(value, TaskRunFuture):
                value = value.result()
            if isinstance(value, unmapped):
                static[key] = value.value
            elif _is_iterable(value):
                iterable[key] = list(value)
            else:
                static[key] = value
        if not iterable:
            from headwater.exceptions import MappingMissingIterable

            raise MappingMissingIterable(
                f"Task {task.name!r} was mapped over no iterable: .map() needs at least one "
                f"argument that is a list, tuple, range or other iterable (strings count as "
                f"single values). Got: {_describe(parameters)}. To call the task once, call it "
                "or use .submit() instead."
            )
        lengths = {key: len(values) for key, values in iterable.items()}
        if len(set(lengths.values())) > 1:
            from headwater.exceptions import MappingLengthMismatch

            shown = ", ".join(f"{key}={length}" for key, length in lengths.items())
            raise MappingLengthMismatch(
                f"Task {task.name!r} was mapped over iterables of different lengths ({shown}); "
                "all mapped arguments must have the same length. Wrap an argument that every "
                "call should receive whole in unmapped(...)."
            )
        count = next(iter(lengths.values()))
        wait_list = list(wait_for) if wait_for else None
        futures: PrefectFutureList[Any] = PrefectFutureList()
        for index in range(count):
            call_parameters: dict[str, Any] = {}
            for key in parameters:
                value = iterable[key][index] if key in iterable else static[key]
                wrapper = wrappers.get(key)
                call_parameters[key] = wrapper.rewrap(value) if wrapper is not None else value
            futures.append(self.submit(task, call_parameters, wait_for=wait_list))
        return futures

    def __enter__(self) -> Self:
        if self._started:
            raise RuntimeError(
                f"This {type(self).__name__} is already in use; use runner.duplicate() to get "
                "another with the same settings."
            )
        self._started = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._started = False

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, TaskRunner)
        return self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self._settings().items())
        return f"{type(self).__name__}({settings})"


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted tasks on a pool of threads (the default for every flow).

    Each call runs in a worker thread with a copy of the submitter's context (the flow run,
    `tags` blocks, the run logger); an async task runs on an event loop of its own there.

    Args:
        max_workers: The most tasks to run at once; ``None`` sets no limit (threads are
            started as needed and reused once idle), as Prefect's does.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise ValueError(
                f"max_workers must be a positive integer or None; got {max_workers!r}."
            )
        self.max_workers = max_workers
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._early: EarlyStarts | None = None

    def __enter__(self) -> Self:
        super().__enter__()
        import concurrent.futures

        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_workers or sys.maxsize,
            thread_name_prefix="headwater-task",
        )
        if self.max_workers is None:
            # Every call starts at once anyway: its start need not wait for a worker.
            from headwater._engine.early import EarlyStarts

            self._early = EarlyStarts(self._executor)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        executor = self._executor
        self._executor = None
        early, self._early = self._early, None
        if executor is not None:
            # An interrupt (Ctrl-C, SIGTERM, cancellation) drops the calls no worker started:
            # their runs were never created (or, started early, are ended CANCELLED). Started
            # ones always finish and report.
            interrupted = exc_type is not None and not issubclass(exc_type, Exception)
            if early is not None:
                early.close(interrupted)
            executor.shutdown(wait=True, cancel_futures=interrupted)
        super().__exit__(exc_type, exc_value, traceback)

    def submit(
        self,
        task: TaskRunnable,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
        dependencies: dict[str, Any] | None = None,
    ) -> TaskRunFuture[Any]:
        new_call, run_task_call, transport_for_call, future_type = _submit_entry()
        executor = self._executor
        if executor is None:
            raise self._not_started()
        call = new_call(task, parameters, wait_for)
        context = contextvars.copy_context()
        transport = transport_for_call(None)
        early = self._early
        wrapped = early.submit(call, transport, context) if early is not None else None
        if wrapped is None:
            wrapped = executor.submit(context.run, run_task_call, call, transport=transport)
        return future_type(call.task_run_id, wrapped, task_name=task.name)  # type: ignore[no-any-return]


@functools.cache
def _submit_entry() -> tuple[Any, Any, Any, Any]:
    """What `ThreadPoolTaskRunner.submit` calls, imported on the first submit and then kept.

    Not at the top: ``import headwater`` loads this module (flows name their default runner)
    and must not load the engine. Not per call either: an import statement costs more than a
    trivial task's own function.
    """
    from headwater._engine.calls import new_call, run_task_call
    from headwater._transport.runtime import transport_for_call
    from headwater.futures import ConcurrentTaskRunFuture

    return new_call, run_task_call, transport_for_call, ConcurrentTaskRunFuture


def _is_iterable(value: Any) -> bool:
    """Whether `Task.map` iterates over ``value`` (strings, bytes and files are single values)."""
    if isinstance(value, str | bytes | bytearray | io.IOBase):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _describe(parameters: dict[str, Any]) -> str:
    return (
        ", ".join(f"{key}={type(value).__name__}" for key, value in parameters.items())
        or "no arguments"
    )


#: The runners that run tasks in other processes (headwater._runners), loaded on first use:
#: they build on the classes above, so importing them here would be an import cycle, and a
#: flow that never names them never loads multiprocessing or dask.
_OTHER_PROCESSES = {
    "ProcessPoolTaskRunner": "headwater._runners.process",
    "DaskTaskRunner": "headwater._runners.dask",
    "get_dask_client": "headwater._runners.dask",
    "get_async_dask_client": "headwater._runners.dask",
}


def __getattr__(name: str) -> Any:
    module = _OTHER_PROCESSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value

"""The run context: which flow run the current code belongs to.

A `contextvars.ContextVar` holds the current `FlowRunContext`, so it follows the code that runs
inside a flow: through nested calls, into asyncio tasks it creates, and back out when the run
ends. Subflows find their parent here, and `get_run_logger` finds the run to log to.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from headwater.exceptions import MissingContextError

if TYPE_CHECKING:
    import logging

    from headwater._engine.runnable import Runnable
    from headwater._runs import FlowRun, TaskRun
    from headwater._transport.interface import Transport

__all__ = [
    "FlowRunContext",
    "TaskRunContext",
    "get_run_context",
    "tags",
]


class FlowRunContext:
    """What the code of a running flow can know about its run.

    Attributes:
        flow: The `Flow` being run (typed by what the engine needs of it, `Runnable`, so this
            module does not depend on `headwater._flows`).
        flow_run: The run as the service last reported it (built on first access after each
            state change, so runs that never look pay nothing).
        flow_run_id: The run's id, without building the `FlowRun` view.
        parameters: The parameters the function was called with (after validation).
        parent: The context of the flow run this one is a subflow of, if any.
        log_prints: Whether ``print`` in this run goes to the run's logs.
        logger: The run's logger (a `logging.LoggerAdapter` carrying the run's identity).
        transport: The transport the run reports through; its subflows and its log lines use
            the same one.
    """

    __slots__ = (
        "_flow_run",
        "_make_flow_run",
        "_task_calls",
        "flow",
        "flow_run_id",
        "log_prints",
        "logger",
        "parameters",
        "parent",
        "transport",
    )

    def __init__(
        self,
        flow: Runnable,
        flow_run_id: str,
        make_flow_run: Callable[[], FlowRun],
        parameters: dict[str, Any],
        parent: FlowRunContext | None = None,
        log_prints: bool = False,
        logger: logging.LoggerAdapter[logging.Logger] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.flow = flow
        self.flow_run_id = flow_run_id
        self._make_flow_run = make_flow_run
        self._flow_run: FlowRun | None = None
        self.parameters = parameters
        self.parent = parent
        self.log_prints = log_prints
        self.logger = logger
        self.transport = transport
        self._task_calls: dict[str, Iterator[int]] = {}

    def next_dynamic_key(self, task_key: str) -> str:
        """The next call's ``dynamic_key`` for ``task_key`` in this run: "0", "1", ...

        Thread-safe: `itertools.count` hands out each number once, and `dict.setdefault`
        keeps one counter per key even when two threads ask first at once.
        """
        counter = self._task_calls.get(task_key)
        if counter is None:
            counter = self._task_calls.setdefault(task_key, itertools.count())
        return str(next(counter))

    @property
    def flow_run(self) -> FlowRun:
        flow_run = self._flow_run
        if flow_run is None:
            flow_run = self._flow_run = self._make_flow_run()
        return flow_run

    def run_changed(self) -> None:
        """The run's state changed: the next `flow_run` access rebuilds the view."""
        self._flow_run = None

    @staticmethod
    def get() -> FlowRunContext | None:
        """The context of the flow run the caller runs in, or None outside any run."""
        return _current_flow_run.get()

    def __repr__(self) -> str:
        return f"FlowRunContext(flow={self.flow.name!r}, flow_run_id={self.flow_run_id!r})"


class TaskRunContext:
    """What the code of a running task (and its cache policy) can know about its run.

    Attributes:
        task: The `Task` being run (typed by what the engine needs of it).
        task_run_id: The task run's id.
        parameters: The task's inputs by name.
        flow_run_id: The id of the flow run the task runs in, or None for a task called
            outside any flow.
        task_run: The run as the service last reported it, when the engine has it.
        log_prints: Whether ``print`` in this task goes to the run's logs.
        logger: The task run's logger.
        make_task_run: Builds `task_run` on demand (the engine's; most runs never look).
    """

    __slots__ = (
        "_make_task_run",
        "_task_run",
        "flow_run_id",
        "log_prints",
        "logger",
        "parameters",
        "task",
        "task_run_id",
    )

    def __init__(
        self,
        task: Runnable,
        task_run_id: str,
        parameters: dict[str, Any],
        flow_run_id: str | None = None,
        task_run: TaskRun | None = None,
        log_prints: bool = False,
        logger: logging.LoggerAdapter[logging.Logger] | None = None,
        make_task_run: Callable[[], TaskRun] | None = None,
    ) -> None:
        self.task = task
        self.task_run_id = task_run_id
        self.parameters = parameters
        self.flow_run_id = flow_run_id
        self._task_run = task_run
        self._make_task_run = make_task_run
        self.log_prints = log_prints
        self.logger = logger

    @property
    def task_run(self) -> TaskRun | None:
        """The run as the service last reported it (built on first access after a change)."""
        task_run = self._task_run
        if task_run is None and self._make_task_run is not None:
            task_run = self._task_run = self._make_task_run()
        return task_run

    @task_run.setter
    def task_run(self, value: TaskRun | None) -> None:
        self._task_run = value

    def run_changed(self, make_task_run: Callable[[], TaskRun] | None = None) -> None:
        """The run's state changed: the next `task_run` access rebuilds the view.

        Args:
            make_task_run: Builds the new view (the engine's latest snapshot); None keeps
                the previous builder.
        """
        self._task_run = None
        if make_task_run is not None:
            self._make_task_run = make_task_run

    @staticmethod
    def get() -> TaskRunContext | None:
        """The context of the task run the caller runs in, or None outside any task run."""
        return _current_task_run.get()

    def __repr__(self) -> str:
        return f"TaskRunContext(task={self.task.name!r}, task_run_id={self.task_run_id!r})"


_current_flow_run: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar(
    "headwater_flow_run", default=None
)
_current_task_run: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "headwater_task_run", default=None
)
_current_tags: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "headwater_tags", default=frozenset()
)


@contextmanager
def current(context: FlowRunContext | TaskRunContext) -> Iterator[None]:
    """Make ``context`` the current flow run's or task run's for the block.

    For code that runs on behalf of a run before the engine enters the run's context: a
    ``flow_run_name`` or ``task_run_name`` callable reads the run's parameters through
    `headwater.runtime`, as Prefect's documented callables do.
    """
    variable: contextvars.ContextVar[Any] = (
        _current_flow_run if isinstance(context, FlowRunContext) else _current_task_run
    )
    token = variable.set(context)
    try:
        yield
    finally:
        variable.reset(token)


def get_run_context() -> FlowRunContext | TaskRunContext:
    """The context of the current run: the task run's inside a task, else the flow run's.

    Raises:
        MissingContextError: The caller is not inside a flow run or task run.
    """
    context: FlowRunContext | TaskRunContext | None = _current_task_run.get()
    if context is None:
        context = _current_flow_run.get()
    if context is None:
        raise MissingContextError(
            "There is no active flow run: this must be called from inside a function decorated "
            "with @flow while it runs."
        )
    return context


@contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add tags to every flow run created inside the block (nesting adds up).

    Example:
        >>> with tags("db", "nightly"):
        ...     my_flow()  # the run carries the tags "db" and "nightly"
    """
    current = _current_tags.get() | frozenset(names)
    token = _current_tags.set(current)
    try:
        yield current
    finally:
        _current_tags.reset(token)


def current_tags() -> frozenset[str]:
    """The tags that `tags` blocks around the caller add."""
    return _current_tags.get()

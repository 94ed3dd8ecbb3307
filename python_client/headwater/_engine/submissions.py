"""The task runner a run's code submits to: opened on the first submit, closed before its state.

Every run (a flow run, or a task run whose code submits tasks of its own) has one
`Submissions`. Nothing happens until the code first calls ``.submit()`` or ``.map()``: then a
copy of the run's runner is entered (`TaskRunner.duplicate`), so runs that submit nothing pay
nothing. The engine closes it at the end of each attempt, before proposing the attempt's
outcome: closing exits the runner, which waits until every submitted run has ended. So when the
service decides the run's state, every task run it submitted is already final; a retry opens
a fresh copy.

Task runs submitted from inside a task go to that task run's own runner (a thread pool), not
the flow's: a task waiting on tasks it submitted could otherwise hold the last worker of the
pool they wait for. Calls made outside any run use one process-wide thread pool.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

__all__ = ["Runner", "Submissions", "current_submissions"]


class Runner(Protocol):
    """What this module needs of a `headwater.task_runners.TaskRunner` (the engine does not
    import that module: runners import the engine)."""

    def duplicate(self) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Any: ...


class Submissions:
    """One run's task runner, entered lazily and exited (waiting for its runs) on `close`."""

    __slots__ = ("_lock", "_runner", "_template")

    def __init__(self, template: Runner | None = None) -> None:
        self._template = template
        self._runner: Any = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        """Whether a runner is in use (something was submitted since the last `close`)."""
        return self._runner is not None

    def runner(self, default: Callable[[], Runner]) -> Any:
        """The entered runner to submit to; the first call of an attempt enters a copy.

        Args:
            default: Makes the runner to copy when the run has none of its own (a task run,
                or code outside any run).
        """
        runner = self._runner
        if runner is None:
            with self._lock:
                runner = self._runner
                if runner is None:
                    template = self._template if self._template is not None else default()
                    runner = template.duplicate()
                    runner.__enter__()
                    self._runner = runner
        return runner

    def runner_of_kind(self, kind: type) -> Any | None:
        """The run's runner, entered as a submit would enter it, when it is a ``kind``; None
        (nothing entered) when the run's runner is of another kind or it has none of its own.
        """
        if self._runner is None and not isinstance(self._template, kind):
            return None
        # The default is never called here: the run has a runner of its own (entered or not).
        runner = self.runner(lambda: self._template)  # type: ignore[arg-type,return-value]
        return runner if isinstance(runner, kind) else None

    def close(self, interrupt: BaseException | None = None) -> None:
        """Exit the runner, which waits until every submitted run has ended.

        With an ``interrupt`` (Ctrl-C, SIGTERM, a cancellation), calls no worker started yet
        are dropped; started ones still end and report.
        """
        with self._lock:
            runner = self._runner
            self._runner = None
        if runner is not None:
            if interrupt is None:
                runner.__exit__(None, None, None)
            else:
                runner.__exit__(type(interrupt), interrupt, interrupt.__traceback__)


#: Where ``.submit()`` goes: the innermost run's (a flow run's, or a task run's). Set by the
#: engine while the run's code runs; copied into worker threads with the rest of the context.
_current_submissions: contextvars.ContextVar[Submissions | None] = contextvars.ContextVar(
    "headwater_submissions", default=None
)

_loose_lock = threading.Lock()
_loose: Submissions | None = None


def current_submissions() -> Submissions:
    """Where a ``.submit()`` made here goes: the current run's runner, else the process's."""
    submissions = _current_submissions.get()
    if submissions is not None:
        return submissions
    global _loose
    with _loose_lock:
        if _loose is None:
            _loose = Submissions()
        return _loose

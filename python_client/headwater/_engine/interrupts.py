"""Interrupts of a running flow: SIGTERM, Ctrl-C, cancellation, an enclosing run's timeout.

An interrupt is not the flow's failure, so the engine reports it as CRASHED and lets it
propagate. This module turns SIGTERM into an exception the engine can see (Python's default
handler would end the process without a report), and says in words what interrupted a run.
It also holds `RunningContext`, the block during which a run is current (and interruptible).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from headwater._context import _current_flow_run
from headwater._engine.submissions import _current_submissions
from headwater._engine.timeouts import RunTimeout
from headwater._logging import capture_prints, release_prints
from headwater.exceptions import TerminationSignal

if TYPE_CHECKING:
    from headwater._context import FlowRunContext
    from headwater._engine.submissions import Submissions
    from headwater._states import State
    from headwater._telemetry import RunSpan

__all__ = [
    "Interruptible",
    "RunningContext",
    "SigtermGuard",
    "crash_message",
    "translate_interrupt",
]


class Interruptible(Protocol):
    """What the blocks here need of a run (`headwater._engine.run.EngineRun` has it)."""

    context: FlowRunContext | None
    parent: FlowRunContext | None
    log_prints: bool
    terminated_by: int | None
    submissions: Submissions
    span: RunSpan | None
    final: State[Any] | None
    aborted: str | None


class RunningContext:
    """Sets the run context (and print capture, and the SIGTERM handler) for a block.

    A plain class with slots, not `contextlib.contextmanager`: it is entered at least once per
    run, on the path whose cost a trivial run measures.
    """

    __slots__ = ("_engine", "_guard", "_submissions_token", "_token")

    def __init__(
        self, engine: Interruptible, signals: bool, async_task: asyncio.Task[Any] | None
    ) -> None:
        self._engine = engine
        self._guard = SigtermGuard(engine, async_task) if signals else None
        self._token: Any = None
        self._submissions_token: Any = None

    def __enter__(self) -> None:
        engine = self._engine
        self._token = _current_flow_run.set(engine.context)
        self._submissions_token = _current_submissions.set(engine.submissions)
        if engine.log_prints:
            capture_prints()
        if self._guard is not None:
            self._guard.__enter__()
        if engine.span is not None:  # tracing hook (headwater._telemetry)
            engine.span.attach()

    def __exit__(self, *exc_info: Any) -> None:
        engine = self._engine
        if engine.span is not None:  # tracing hook: the span ends with the run
            engine.span.leave(engine.final, engine.aborted, exc_info[1])
        if self._guard is not None:
            self._guard.__exit__()
        if engine.log_prints:
            release_prints()
        _current_submissions.reset(self._submissions_token)
        _current_flow_run.reset(self._token)


class SigtermGuard:
    """Turns SIGTERM into `TerminationSignal` while a top-level run is in progress.

    Installed only in the main thread (the only one Python delivers signals to) and only for
    top-level runs; the previous handler is restored afterwards. For an async run the handler
    cancels the run's task instead of raising, because an exception raised inside the event
    loop's own code would never reach the flow's coroutine.
    """

    __slots__ = ("_async_task", "_engine", "_installed", "_previous")

    def __init__(self, engine: Interruptible, async_task: asyncio.Task[Any] | None = None) -> None:
        self._engine = engine
        self._async_task = async_task
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigtermGuard:
        if self._engine.parent is None and threading.current_thread() is threading.main_thread():
            handler = self._async_handler() if self._async_task is not None else self._raise
            self._previous = signal.signal(signal.SIGTERM, handler)
            self._installed = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            previous = self._previous
            # None means the previous handler was not installed from Python: use the default.
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        self._installed = False
        self._previous = None

    def _raise(self, signum: int, frame: Any) -> None:
        self._engine.terminated_by = signum
        raise TerminationSignal(signum)

    def _async_handler(self) -> Callable[[int, Any], None]:
        engine = self._engine
        task = self._async_task
        assert task is not None
        loop = task.get_loop()

        def handler(signum: int, frame: Any) -> None:
            engine.terminated_by = signum
            loop.call_soon_threadsafe(task.cancel)

        return handler


def translate_interrupt(terminated_by: int | None, exc: BaseException) -> BaseException:
    """An async run cancelled by our SIGTERM handler raises `TerminationSignal`.

    The task is uncancelled first, so the crash report after it can still await the service.
    """
    if terminated_by is not None and isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return TerminationSignal(terminated_by)
    return exc


def crash_message(exc: BaseException) -> str:
    """What interrupted the run, in words, for the CRASHED state's message."""
    if isinstance(exc, TerminationSignal):
        return f"The process received signal {exc.signal} (SIGTERM) while the run was running."
    if isinstance(exc, KeyboardInterrupt):
        return "The run was interrupted (KeyboardInterrupt)."
    if isinstance(exc, RunTimeout):
        return "The run was interrupted because an enclosing flow run exceeded its timeout."
    if isinstance(exc, asyncio.CancelledError):
        return "The run's asyncio task was cancelled."
    return f"The run crashed: {type(exc).__name__}: {exc}"

"""Time limits for synchronous flow code that runs in the caller's own thread.

A sync flow runs in the thread that called it (no thread per run), so its ``timeout_seconds``
must interrupt that thread. In the main thread a ``SIGALRM`` timer does it: the handler raises
`RunTimeout`, which also interrupts a blocking ``time.sleep``. Nested limits (a subflow with its
own timeout) share the one timer, which is always armed for the earliest deadline, and a timer
that was armed before (pytest-timeout uses one) is kept and restored. In other threads a
watchdog thread raises `RunTimeout` in the run's thread with ``PyThreadState_SetAsyncExc``; that
takes effect at the next Python bytecode, so a blocking C call finishes first.

`RunTimeout` derives from `BaseException` so ``except Exception:`` in user code cannot swallow
it; the engine turns it into a `FlowRunTimeoutError` for the run whose limit expired.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

__all__ = ["RunTimeout", "TimeoutScope"]

_HAS_ALARM = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
_MIN_DELAY = 0.0005


class RunTimeout(BaseException):
    """Raised inside a run's code when a time limit expires (internal to the SDK)."""


class TimeoutScope:
    """A context manager that interrupts the current thread after ``seconds``.

    Attributes:
        expired: True once this scope's time is up, so the engine can tell its own timeout
            from an enclosing run's.
    """

    __slots__ = ("_watchdog", "deadline", "expired", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = 0.0
        self.expired = False
        self._watchdog: _Watchdog | None = None

    def __enter__(self) -> TimeoutScope:
        self.deadline = time.monotonic() + self.seconds
        if _HAS_ALARM and threading.current_thread() is threading.main_thread():
            _alarms.push(self)
        else:
            self._watchdog = _Watchdog(self, threading.get_ident())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._watchdog is not None:
            self._watchdog.stop(delivered=exc_type is RunTimeout)
            self._watchdog = None
        else:
            _alarms.pop(self)


class _AlarmStack:
    """The main thread's active scopes, sharing one ``ITIMER_REAL`` timer."""

    def __init__(self) -> None:
        self.scopes: list[TimeoutScope] = []
        self.previous_handler: Any = None
        self.previous_deadline: float | None = None

    def push(self, scope: TimeoutScope) -> None:
        if not self.scopes:
            self.previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            delay, _interval = signal.setitimer(signal.ITIMER_REAL, 0)
            self.previous_deadline = time.monotonic() + delay if delay > 0 else None
        self.scopes.append(scope)
        self._arm()

    def pop(self, scope: TimeoutScope) -> None:
        try:
            self.scopes.remove(scope)
        except ValueError:
            return
        if self.scopes:
            self._arm()
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        previous = self.previous_handler
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if self.previous_deadline is not None:
            remaining = self.previous_deadline - time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, max(remaining, _MIN_DELAY))
        self.previous_handler = None
        self.previous_deadline = None

    def _arm(self) -> None:
        deadlines = [scope.deadline for scope in self.scopes if not scope.expired]
        if self.previous_deadline is not None:
            deadlines.append(self.previous_deadline)
        if not deadlines:
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        delay = min(deadlines) - time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, max(delay, _MIN_DELAY))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic() + _MIN_DELAY
        fired = [s for s in self.scopes if not s.expired and s.deadline <= now]
        for scope in fired:
            scope.expired = True
        previous_due = self.previous_deadline is not None and self.previous_deadline <= now
        if previous_due:
            self.previous_deadline = None
        self._arm()
        if fired:
            raise RunTimeout()
        if previous_due and callable(self.previous_handler):
            # The timer someone armed before us (pytest-timeout, an application alarm) is due.
            self.previous_handler(signum, frame)


_alarms = _AlarmStack()


class _Watchdog:
    """Raises `RunTimeout` in another thread when its scope's time is up."""

    def __init__(self, scope: TimeoutScope, thread_id: int) -> None:
        self.scope = scope
        self.thread_id = thread_id
        self.lock = threading.Lock()
        self.done = False
        self.fired = False
        self.timer = threading.Timer(scope.seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            self.scope.expired = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread_id), ctypes.py_object(RunTimeout)
            )

    def stop(self, delivered: bool) -> None:
        with self.lock:
            self.done = True
            self.timer.cancel()
            if self.fired and not delivered:
                # The exception is still pending in the thread: withdraw it before it hits
                # engine code that runs after the flow function.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)

"""Time limits for synchronous code in the caller's thread (`headwater._engine.timeouts`)."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from headwater._engine.timeouts import RunTimeout, TimeoutScope


def test_expired_scope_interrupts_a_blocking_sleep() -> None:
    scope = TimeoutScope(0.1)
    started = time.monotonic()
    with pytest.raises(RunTimeout), scope:
        time.sleep(5)
    assert scope.expired
    assert time.monotonic() - started < 2


def test_scope_that_finishes_in_time_leaves_no_alarm_behind() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with TimeoutScope(0.2) as scope:
        pass
    assert not scope.expired
    assert signal.getsignal(signal.SIGALRM) is before
    time.sleep(0.3)  # nothing fires


def test_nested_scopes_expire_in_deadline_order() -> None:
    outer = TimeoutScope(0.3)
    inner = TimeoutScope(5)
    with pytest.raises(RunTimeout), outer, inner:
        time.sleep(5)
    assert outer.expired and not inner.expired


def test_inner_scope_expiring_first_leaves_the_outer_running() -> None:
    outer = TimeoutScope(5)
    inner = TimeoutScope(0.1)
    with outer:
        with pytest.raises(RunTimeout), inner:
            time.sleep(5)
        assert inner.expired and not outer.expired
        time.sleep(0.05)  # the outer limit is still armed, not fired
    assert not outer.expired


def test_a_timer_armed_before_is_restored_afterwards() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.4)
        with TimeoutScope(5):
            time.sleep(0.05)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 0.4
        time.sleep(0.6)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_watchdog_interrupts_python_code_in_another_thread() -> None:
    outcome: list[str] = []

    def target() -> None:
        scope = TimeoutScope(0.1)
        try:
            with scope:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    pass
            outcome.append("finished")
        except RunTimeout:
            outcome.append("interrupted" if scope.expired else "foreign")

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert outcome == ["interrupted"]


def test_watchdog_scope_finishing_in_time_raises_nothing_later() -> None:
    outcome: list[str] = []

    def target() -> None:
        with TimeoutScope(0.1):
            pass
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass
        outcome.append("clean")

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert outcome == ["clean"]

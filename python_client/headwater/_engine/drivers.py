"""The drivers of plain flows: call a sync function (or await a coroutine) once per attempt.

A driver owns the order of the steps (create, start, call, finish, retry, hooks) and where
the function's own exceptions end up; `headwater._engine.machine.RunEngine` decides what each
service answer means. The two drivers stay side by side so a change to one is seen next to
the other. Generator flows have their own drivers (`headwater._engine.generators`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from headwater._engine.cancel import RunCancelled
from headwater._engine.interrupts import translate_interrupt
from headwater._engine.machine import RunEngine
from headwater._engine.timeouts import RunTimeout, TimeoutScope
from headwater._states import State

__all__ = ["await_upstream", "run_async", "run_sync", "wait_for_upstream"]


def run_sync(engine: RunEngine, wait_for: Iterable[Any] | None) -> Any:
    """Run a sync flow in the caller's thread; return (or raise) what the call should."""
    wait_for_upstream(wait_for)
    engine.create_or_load()
    with engine.running_context():
        try:
            if engine.start_or_reject_parameters():
                fn = engine.flow.fn
                while True:
                    args, kwargs = engine.call_arguments()
                    cancel = engine.cancel_scope()
                    try:
                        with cancel:
                            if engine.timeout_seconds:
                                scope = TimeoutScope(engine.timeout_seconds)
                                with scope:
                                    value = fn(*args, **kwargs)
                            else:
                                scope = None
                                value = fn(*args, **kwargs)
                    except RunTimeout:
                        if scope is None or not scope.expired:
                            raise  # an enclosing run's time is up: this run is interrupted
                        retry = engine.fail(engine.timeout_error(), timed_out=True)
                    except RunCancelled:
                        if not cancel.fired:
                            raise  # an enclosing run was cancelled: `crash` reports this one
                        engine.cancel(cancel.reason)
                        break
                    except Exception as exc:
                        retry = engine.fail(exc)
                    else:
                        retry = engine.complete(value)
                    if not (retry and engine.start()):
                        break
        except BaseException as exc:
            engine.crash(exc)
            raise
        engine.final_hooks()
    return engine.outcome()


async def run_async(engine: RunEngine, wait_for: Iterable[Any] | None) -> Any:
    """Run an async flow in the caller's event loop; the coroutine `run_flow` returns."""
    await await_upstream(wait_for)
    await engine.acreate_or_load()
    task = asyncio.current_task()
    with engine.running_context(async_task=task):
        try:
            if await engine.astart_or_reject_parameters():
                fn = engine.flow.fn
                while True:
                    args, kwargs = engine.call_arguments()
                    timeout = None
                    cancel = engine.cancel_scope(async_task=task)
                    try:
                        with cancel:
                            if engine.timeout_seconds:
                                async with asyncio.timeout(engine.timeout_seconds) as timeout:
                                    value = await fn(*args, **kwargs)
                            else:
                                value = await fn(*args, **kwargs)
                    except asyncio.CancelledError:
                        if not cancel.fired:
                            raise  # not this run's cancellation: handled as an interrupt below
                        if task is not None:
                            task.uncancel()
                        await engine.acancel(cancel.reason)
                        break
                    except TimeoutError as exc:
                        if timeout is not None and timeout.expired():
                            retry = await engine.afail(engine.timeout_error(), timed_out=True)
                        else:
                            retry = await engine.afail(exc)
                    except Exception as exc:
                        retry = await engine.afail(exc)
                    else:
                        retry = await engine.acomplete(value)
                    if not (retry and await engine.astart()):
                        break
        except BaseException as exc:
            translated = translate_interrupt(engine.terminated_by, exc)
            await engine.acrash(translated)
            if translated is exc:
                raise
            raise translated from None
        await engine.afinal_hooks()
    return engine.outcome()


def wait_for_upstream(wait_for: Iterable[Any] | None) -> None:
    """Block until every future in ``wait_for`` is done (states are done already)."""
    if not wait_for:
        return
    for wait in _wait_methods(wait_for):
        wait()


async def await_upstream(wait_for: Iterable[Any] | None) -> None:
    """Async twin of `wait_for_upstream`: a future's ``wait`` may return an awaitable."""
    if not wait_for:
        return
    for wait in _wait_methods(wait_for):
        waited = wait()
        if inspect.isawaitable(waited):
            await waited


def _wait_methods(wait_for: Iterable[Any]) -> Iterator[Callable[[], Any]]:
    """The ``wait`` method of each future in ``wait_for``; a `State` has nothing to wait for."""
    for item in wait_for:
        if isinstance(item, State):
            continue
        wait = getattr(item, "wait", None)
        if callable(wait):
            yield wait

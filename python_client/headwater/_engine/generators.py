"""The drivers of generator flows: the run lasts as long as the flow's generator does.

A generator flow's run completes when its generator is exhausted, or when the consumer stops
early (closing the generator ends the run cleanly, as breaking out of a loop should). The
flow's code runs only while the consumer asks for the next value, so the run context is set
around each step rather than around the whole run, and a timeout is a deadline checked per
step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator, Iterable
from typing import Any

from headwater._engine.drivers import await_upstream, wait_for_upstream
from headwater._engine.interrupts import SigtermGuard, translate_interrupt
from headwater._engine.machine import RunEngine
from headwater._engine.timeouts import RunTimeout, TimeoutScope
from headwater.exceptions import TerminationSignal

__all__ = ["run_async_generator", "run_generator"]


def run_generator(engine: RunEngine, wait_for: Iterable[Any] | None) -> Generator[Any, Any, None]:
    """Drive a sync generator flow, yielding what it yields and passing on what is sent."""
    wait_for_upstream(wait_for)
    engine.create_or_load()
    # SIGTERM is handled for the generator's whole life, also while the consumer holds a value:
    # a signal then interrupts the consumer, and closing this generator reports the crash.
    guard = SigtermGuard(engine).__enter__()
    try:
        with engine.running_context(signals=False):
            started = engine.start_or_reject_parameters()
        while started:
            gen, deadline = _begin_attempt(engine)
            retry = False
            sent: Any = None
            while True:
                with engine.running_context(signals=False):
                    try:
                        value = _step(gen, sent, deadline)
                    except StopIteration as stop:
                        retry = engine.complete(stop.value)
                        break
                    except RunTimeout:
                        if deadline is None or time.monotonic() < deadline:
                            raise
                        retry = engine.fail(engine.timeout_error(), timed_out=True)
                        break
                    except Exception as exc:
                        retry = engine.fail(exc)
                        break
                try:
                    sent = yield value
                except GeneratorExit:
                    gen.close()
                    with engine.running_context(signals=False):
                        if engine.terminated_by is not None:
                            # The consumer was interrupted by SIGTERM while holding a value.
                            engine.crash(TerminationSignal(engine.terminated_by))
                        else:  # the consumer stopped early: the run completes cleanly
                            engine.complete(None)
                    raise
            with engine.running_context(signals=False):
                started = retry and engine.start()
    except GeneratorExit:
        with engine.running_context(signals=False):
            engine.final_hooks()
        raise
    except BaseException as exc:
        with engine.running_context(signals=False):
            engine.crash(exc)
        raise
    finally:
        guard.__exit__()
    with engine.running_context(signals=False):
        engine.final_hooks()
    if engine.return_type == "result":
        engine.outcome()  # raises the flow's exception (or Abort), as a plain call would


async def run_async_generator(
    engine: RunEngine, wait_for: Iterable[Any] | None
) -> AsyncGenerator[Any, Any]:
    """Drive an async generator flow, yielding what it yields and passing on what is sent."""
    await await_upstream(wait_for)
    await engine.acreate_or_load()
    try:
        with engine.running_context(signals=False):
            started = await engine.astart_or_reject_parameters()
        while started:
            agen, deadline = _begin_attempt(engine)
            retry = False
            sent: Any = None
            while True:
                with engine.running_context(async_task=asyncio.current_task()):
                    try:
                        value = await _astep(agen, sent, deadline)
                    except StopAsyncIteration:
                        retry = await engine.acomplete(None)
                        break
                    except TimeoutError as exc:
                        if deadline is not None and time.monotonic() >= deadline:
                            timeout_exc = engine.timeout_error()
                            retry = await engine.afail(timeout_exc, timed_out=True)
                        else:
                            retry = await engine.afail(exc)
                        break
                    except Exception as exc:
                        retry = await engine.afail(exc)
                        break
                try:
                    sent = yield value
                except GeneratorExit:
                    await agen.aclose()
                    with engine.running_context(signals=False):
                        await engine.acomplete(None)
                    raise
            with engine.running_context(signals=False):
                started = retry and await engine.astart()
    except GeneratorExit:
        with engine.running_context(signals=False):
            await engine.afinal_hooks()
        raise
    except BaseException as exc:
        translated = translate_interrupt(engine.terminated_by, exc)
        with engine.running_context(signals=False):
            await engine.acrash(translated)
        if translated is exc:
            raise
        raise translated from None
    with engine.running_context(signals=False):
        await engine.afinal_hooks()
    if engine.return_type == "result":
        engine.outcome()


def _begin_attempt(engine: RunEngine) -> tuple[Any, float | None]:
    """Call the flow's function for one attempt: its (async) generator, and the deadline."""
    with engine.running_context(signals=False):
        args, kwargs = engine.call_arguments()
        gen = engine.flow.fn(*args, **kwargs)
        deadline = None
        if engine.timeout_seconds:
            deadline = time.monotonic() + engine.timeout_seconds
    return gen, deadline


def _step(gen: Generator[Any, Any, Any], sent: Any, deadline: float | None) -> Any:
    """Resume the generator once, interrupting it when the attempt's deadline passes."""
    if deadline is None:
        return gen.send(sent)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RunTimeout()
    with TimeoutScope(remaining):
        return gen.send(sent)


async def _astep(agen: AsyncGenerator[Any, Any], sent: Any, deadline: float | None) -> Any:
    """Async twin of `_step` (the deadline surfaces as `TimeoutError`)."""
    if deadline is None:
        return await agen.asend(sent)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError()
    async with asyncio.timeout(remaining):
        return await agen.asend(sent)

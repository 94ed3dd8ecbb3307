"""State-change hooks (``on_running``, ``on_completion``, ``on_failure`` and the rest).

Hooks run on the client after the service has stored the state they react to. A failing hook is
logged on the run's logger and never changes the run's state: the state is already stored, and
a hook's bug must not turn a completed run into a failed one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from headwater._states import State, StateType

if TYPE_CHECKING:
    from headwater._engine.runnable import Hook, Runnable
    from headwater._runs import FlowRun

__all__ = ["arun_hooks", "final_hooks_of", "run_hooks"]

_HOOK_ATTRIBUTES = {
    StateType.COMPLETED: "on_completion_hooks",
    StateType.FAILED: "on_failure_hooks",
    StateType.CRASHED: "on_crashed_hooks",
    StateType.CANCELLED: "on_cancellation_hooks",
    StateType.CANCELLING: "on_cancellation_hooks",
}


def final_hooks_of(flow: Runnable, state_type: StateType) -> list[Hook]:
    """The hooks ``flow`` runs when a run ends in ``state_type`` (a copy, safe to iterate)."""
    attribute = _HOOK_ATTRIBUTES.get(state_type)
    return list(getattr(flow, attribute, ())) if attribute else []


def run_hooks(
    flow: Runnable,
    hooks: Sequence[Hook],
    view: FlowRun,
    state: State[Any] | None,
    run_logger: logging.LoggerAdapter[logging.Logger] | None,
) -> None:
    """Call each hook with (flow, run, state); an async hook is run to completion here."""
    for hook in hooks:
        try:
            outcome = hook(flow, view, state)
            if inspect.isawaitable(outcome):
                _run_coroutine_blocking(outcome)
        except Exception as exc:
            _hook_failed(flow, hook, state, exc, run_logger)


async def arun_hooks(
    flow: Runnable,
    hooks: Sequence[Hook],
    view: FlowRun,
    state: State[Any] | None,
    run_logger: logging.LoggerAdapter[logging.Logger] | None,
) -> None:
    """Async twin of `run_hooks`: an async hook is awaited on the run's own loop."""
    for hook in hooks:
        try:
            outcome = hook(flow, view, state)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            _hook_failed(flow, hook, state, exc, run_logger)


def _hook_failed(
    flow: Runnable,
    hook: Hook,
    state: State[Any] | None,
    exc: Exception,
    run_logger: logging.LoggerAdapter[logging.Logger] | None,
) -> None:
    name = getattr(hook, "__qualname__", None) or repr(hook)
    assert run_logger is not None
    run_logger.error(
        "Hook %r of flow %r raised %s: %s. The run stays %s; fix the hook to stop this error.",
        name,
        flow.name,
        type(exc).__name__,
        exc,
        state.name if state is not None else "unchanged",
        exc_info=exc,
    )


def _run_coroutine_blocking(awaitable: Any) -> Any:
    """Run an async hook from sync code, even when this thread already runs an event loop."""

    async def wrapper() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapper())
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(wrapper())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="headwater-hook")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")

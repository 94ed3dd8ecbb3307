"""Submitted task calls whose start goes to the service at once, before a worker takes them.

A thread pool with no worker limit (the default runner) starts every submitted call at once
anyway, so its start need not wait for a worker: the submitting thread builds the run's spec
and sends its create-and-start without blocking (`Transport.start_task_run_then`). A thousand
``.submit()`` calls then leave in a few messages, and a worker is taken only when the service's
answer is in, to run the function and report its end; no worker sits out a round trip, so
the pool stays small. What the service decides is unchanged: RUNNING (the engine runs the
function), a cached result, or a refusal, each handled by the same engine code as a start
sent from the worker (`TaskEngine.prestarted`).

A pool with a worker limit keeps the usual path: there a run stays PENDING until a worker is
free, and a start sent early would report it RUNNING while it waits.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from headwater._engine.entry import drive
from headwater._engine.task_call import has_upstream
from headwater._engine.tasks import TaskEngine

if TYPE_CHECKING:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from headwater._engine.task_call import TaskCall
    from headwater._states import State
    from headwater._transport.interface import Decision, Transport

__all__ = ["EarlyStarts"]

#: The message of a run that started but never ran: its flow run was interrupted first.
_DROPPED = "The task run was not run: its flow run was interrupted before a worker took it."


class EarlyStarts:
    """The early starts of one entered thread pool, handed to the pool as answers come in.

    Args:
        pool: The entered pool; it must not be shut down before `close` returns.
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._changed = threading.Condition()
        self._unanswered = 0
        self._closed = False

    def submit(
        self, call: TaskCall, transport: Transport, context: contextvars.Context
    ) -> Future[State[Any]] | None:
        """Send ``call``'s start now; the future gets its final state.

        Returns None when the call must take the usual path: it waits for upstream futures
        first, it is a generator, or its spec cannot be built here (the worker then raises
        the same error where callers expect it).
        """
        if call.task.isgenerator or has_upstream(call):
            return None
        try:
            engine = context.run(TaskEngine, call, "state", transport)
            spec = context.run(engine._spec)
        except Exception:
            return None
        outer: Future[State[Any]] = Future()
        with self._changed:
            self._unanswered += 1
        try:
            transport.start_task_run_then(spec, partial(self._answered, engine, context, outer))
        except BaseException as exc:  # the connection is closed: the future says so
            self._answered(engine, context, outer, None, exc)
        return outer

    def close(self, interrupted: bool) -> None:
        """Before the pool shuts down: wait until every start was answered and handed over.

        After an interrupt nothing more is handed over: runs whose start is answered later
        are reported CANCELLED instead of run.
        """
        with self._changed:
            if interrupted:
                self._closed = True
                return
            while self._unanswered:
                self._changed.wait()

    def _answered(
        self,
        engine: TaskEngine,
        context: contextvars.Context,
        outer: Future[State[Any]],
        decision: Decision | None,
        error: BaseException | None,
    ) -> None:
        """On the transport's loop: give the answered start to a worker (never blocks long)."""
        with self._changed:
            self._unanswered -= 1
            self._changed.notify_all()
            if error is None and not self._closed:
                assert decision is not None
                engine.prestarted = decision
                try:
                    inner = self._pool.submit(context.run, _run, engine)
                except RuntimeError:  # the pool is shut down already: it is dropped below
                    pass
                else:
                    outer.set_running_or_notify_cancel()
                    inner.add_done_callback(partial(_settle, engine, decision, outer))
                    return
        if error is not None:
            outer.set_exception(error)
        else:
            assert decision is not None
            outer.set_result(_dropped(engine, decision))


def _run(engine: TaskEngine) -> State[Any]:
    """In a worker: run the started call to its final state (as `run_task_call` does)."""
    outcome = drive(engine, None)
    if inspect.iscoroutine(outcome):
        outcome = asyncio.run(outcome)
    state: State[Any] = outcome
    return state


def _settle(
    engine: TaskEngine, decision: Decision, outer: Future[State[Any]], inner: Future[State[Any]]
) -> None:
    """Pass the worker's outcome on; a call the pool dropped (an interrupt) is reported."""
    if inner.cancelled():
        outer.set_result(_dropped(engine, decision))
        return
    error = inner.exception()
    if error is not None:
        outer.set_exception(error)
    else:
        outer.set_result(inner.result())


def _dropped(engine: TaskEngine, decision: Decision) -> State[Any]:
    """End a started run that will not run CANCELLED (without waiting); return that state."""
    from headwater._states import Cancelled
    from headwater._transport.interface import DecisionKind, Proposal

    state: State[Any] = Cancelled(message=_DROPPED)
    if decision.kind is DecisionKind.ACCEPT and decision.task_run is not None:
        engine.transport.propose_task_run_state_nowait(decision.task_run.id, Proposal(state))
    return state

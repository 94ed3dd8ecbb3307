"""The parent's half of running task calls elsewhere, shared by the process and Dask runners.

``submit`` never blocks: a call with upstream futures waits for them on a parent thread, gets
their results in place of the futures (futures cannot cross a process boundary), and is then
shipped through a `Backend`; a call without is shipped at once. The state that comes
back completes the future the runner handed out. When the other process died instead, the
parent asks the service: a run that had started ends CRASHED (`headwater._runners.crash`),
one that never started is shipped again, once the backend has replaced what it lost.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from headwater._context import FlowRunContext
from headwater._runners.child import pack_call, shipping_from, unpack
from headwater._runners.crash import crash_task_run
from headwater.exceptions import CrashedRun, MissingResult

if TYPE_CHECKING:
    from collections.abc import Iterable

    from headwater._engine.calls import TaskCall
    from headwater._engine.runnable import TaskRunnable
    from headwater._states import State
    from headwater._transport.interface import Transport
    from headwater.futures import TaskRunFuture

__all__ = ["Backend", "Dispatcher"]

#: How many times a call that never started is shipped again after its process was lost.
MAX_RESHIPS = 3


class Backend(Protocol):
    """Where shipped calls run: a process pool, a Dask cluster."""

    def check_reachable(self, address: str) -> None:
        """Raise when the processes calls would run in cannot reach the service at ``address``."""
        ...

    def ship(self, call: TaskCall, payload: bytes, address: str) -> Future[bytes]:
        """Start running ``payload`` (a pickled call) elsewhere; the future gets its answer."""
        ...

    def lost(self, call: TaskCall, error: BaseException | None) -> tuple[str, bool]:
        """Why the call ended without a final state: the CRASHED message, and whether its
        process died (then a call that never started is shipped again).

        ``error`` is what the backend's future raised; None when the call came back without
        a final state.
        """
        ...


class Dispatcher:
    """Turns submitted calls into futures of their final states, whatever process runs them.

    Args:
        backend: Where the calls run.
        preparers: How many calls may wait for their upstream futures at once. Waiting needs
            a thread each; since a call is always submitted after its upstream calls, the
            oldest waiting call's upstreams are already shipped, so any number is safe.
    """

    def __init__(self, backend: Backend, preparers: int) -> None:
        self.backend = backend
        self._preparer_count = preparers
        self._preparers: ThreadPoolExecutor | None = None
        self._pending: set[Future[State[Any]]] = set()
        self._lock = threading.Lock()

    def submit_task(
        self, task: TaskRunnable, parameters: dict[str, Any], wait_for: Iterable[Any] | None
    ) -> TaskRunFuture[Any]:
        """A runner's ``submit``: describe the call here (in the flow run), then `submit` it."""
        from headwater._engine.calls import new_call
        from headwater._transport.runtime import transport_for_call
        from headwater.futures import ConcurrentTaskRunFuture

        transport = transport_for_call()
        self.backend.check_reachable(shipping_from(transport))
        call = new_call(task, parameters, wait_for)
        return ConcurrentTaskRunFuture(
            call.task_run_id, self.submit(call, transport), task_name=task.name
        )

    def submit(self, call: TaskCall, transport: Transport) -> Future[State[Any]]:
        """Ship ``call`` once its upstream futures are done; return the future of its state.

        Args:
            call: The call, its id chosen (the crash path proposes for it).
            transport: The flow run's transport: its address goes to the other process, and
                the parent proposes CRASHED through it.
        """
        from headwater._engine.calls import has_upstream

        outer: Future[State[Any]] = Future()
        with self._lock:
            self._pending.add(outer)
        outer.add_done_callback(self._forget)
        if has_upstream(call):
            context = contextvars.copy_context()
            self._preparer().submit(context.run, self._prepare, call, transport, outer)
        else:
            self._ship(call, transport, outer)
        return outer

    def wait(self) -> None:
        """Block until every submitted call has its final state, then stop the preparers."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                break
            for future in pending:
                future.exception()  # waits; never raises the call's error
        with self._lock:
            preparers, self._preparers = self._preparers, None
        if preparers is not None:
            preparers.shutdown(wait=True)

    def _preparer(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._preparers is None:
                self._preparers = ThreadPoolExecutor(
                    self._preparer_count, thread_name_prefix="headwater-upstream"
                )
            return self._preparers

    def _forget(self, future: Future[State[Any]]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _prepare(self, call: TaskCall, transport: Transport, outer: Future[State[Any]]) -> None:
        """Wait for the upstream runs, then ship the call with their results in place.

        When an upstream did not complete, the run ends FAILED (NotReady) here, in the flow's
        process: the task's function is not called, so there is nothing to ship.
        """
        from headwater._engine.calls import resolve_upstream, run_task_call

        try:
            resolved = resolve_upstream(call)
            if resolved.upstream_failures:
                # The engine finds the same failures again (the futures are done) and ends
                # the run NotReady without calling the function.
                outer.set_result(run_task_call(call, transport=transport))
                return
        except BaseException as exc:
            outer.set_exception(exc)
            return
        self._ship(resolved, transport, outer)

    def _ship(self, call: TaskCall, transport: Transport, outer: Future[State[Any]]) -> None:
        """Pickle the call with its flow (the flow run is current here) and send it."""
        try:
            payload = pack_call(call, FlowRunContext.get())
        except Exception as exc:
            outer.set_exception(
                TypeError(
                    f"Task {call.task.name!r} cannot be sent to another process: its function "
                    f"or arguments cannot be pickled ({type(exc).__name__}: {exc}). Pass "
                    "picklable arguments, or run it with the ThreadPoolTaskRunner."
                )
            )
            return
        outer.set_running_or_notify_cancel()
        self._send(_Shipped(call, payload, transport, outer), 0)

    def _send(self, shipped: _Shipped, reships: int) -> None:
        try:
            inner = self.backend.ship(shipped.call, shipped.payload, shipped.transport.address)
        except BaseException as exc:
            shipped.outer.set_exception(exc)
            return
        inner.add_done_callback(lambda done: self._landed(shipped, reships, done))

    def _landed(self, shipped: _Shipped, reships: int, done: Future[bytes]) -> None:
        outer = shipped.outer
        if done.cancelled():  # the runner stopped (an interrupt) before the call started
            outer.set_result(_not_started())
            return
        error = done.exception()
        if error is None:
            returned = unpack(done.result())
            state = returned.state
            if returned.lost:
                outer.set_exception(
                    MissingResult(
                        f"Task run {shipped.call.task_run_id} completed in process "
                        f"{returned.pid}, but its result could not be sent back "
                        f"({returned.lost}). Return a picklable value, or persist the result "
                        "(persist_result=True)."
                    )
                )
                return
            if state.is_final():
                outer.set_result(state)
                return
        # The process died, or the call came back unfinished (Dask ran it a second time after
        # losing its first worker, and the service refused the second run). Proposing CRASHED
        # is a round trip: not on the pool's or Dask's callback thread.
        threading.Thread(
            target=self._crashed,
            args=(shipped, reships, error),
            name="headwater-crashed-task",
            daemon=True,
        ).start()

    def _crashed(self, shipped: _Shipped, reships: int, error: BaseException | None) -> None:
        from headwater._states import Crashed

        outer = shipped.outer
        try:
            message, died = self.backend.lost(shipped.call, error)
            state = crash_task_run(shipped.transport, shipped.call.task_run_id, message)
            if state is None:  # the service never saw the run: it did not start
                if died and reships < MAX_RESHIPS:
                    self._send(shipped, reships + 1)
                    return
                if error is not None:
                    outer.set_exception(error)
                    return
                state = Crashed(message=message, data=CrashedRun(message))
            outer.set_result(state)
        except BaseException as exc:
            if not outer.done():
                outer.set_exception(exc)


@dataclass(frozen=True, slots=True)
class _Shipped:
    """One call on its way: what was sent, and where its answer goes."""

    call: TaskCall
    payload: bytes
    transport: Transport
    outer: Future[State[Any]]


def _not_started() -> State[Any]:
    """The state of a call dropped before it started: its run was never created."""
    from headwater._states import Cancelled

    return Cancelled(
        message="The task run was not started: its flow run was interrupted before a worker "
        "was free."
    )

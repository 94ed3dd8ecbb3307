"""The parent's half of running task calls elsewhere, shared by the process and Dask runners.

``submit`` never blocks: a call waits (as callbacks, holding no thread) until its upstream
futures are done, is then prepared (its upstream results put in place of the futures, since
futures cannot cross a process boundary) and shipped through a `Backend`. The state that comes
back completes the future the runner handed out. When the other process died instead, the
parent asks the service: a run that had started ends CRASHED (`headwater._runners.crash`),
one that never started is shipped again, once the backend has replaced what it lost.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

from headwater._runners.child import unpack
from headwater._runners.crash import crash_task_run
from headwater.exceptions import CrashedRun, MissingResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from headwater._engine.calls import TaskCall
    from headwater._states import State
    from headwater._transport.interface import Transport

__all__ = ["Backend", "Dispatcher"]

#: How many times a call that never started is shipped again after its process was lost.
MAX_RESHIPS = 3


class Backend(Protocol):
    """Where shipped calls run: a process pool, a Dask cluster."""

    def ship(self, call: TaskCall, payload: bytes, address: str) -> Future[bytes]:
        """Start running ``payload`` (a pickled call) elsewhere; the future gets its answer."""
        ...

    def lost(self, call: TaskCall, error: BaseException | None) -> str:
        """Where the call ran and what became of it, for the CRASHED message.

        ``error`` is None when the call came back without a final state.
        """
        ...


class Dispatcher:
    """Turns submitted calls into futures of their final states, whatever process runs them."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pending: set[Future[State[Any]]] = set()
        self._lock = threading.Lock()

    def submit(
        self,
        task_run_id: str,
        upstream: Iterable[Any],
        prepare: Callable[[], TaskCall | State[Any]],
        transport: Transport,
    ) -> Future[State[Any]]:
        """Ship a call once ``upstream`` futures are done; return the future of its state.

        Args:
            task_run_id: The run's id, chosen at submit (the crash path proposes for it).
            upstream: Futures (with ``add_done_callback``) the call waits for.
            prepare: Called once they are done: the call to ship, or the final state the run
                already reached without running (an upstream failed).
            transport: The flow run's transport: its address goes to the other process, and
                the parent proposes CRASHED through it.
        """
        outer: Future[State[Any]] = Future()
        outer.set_running_or_notify_cancel()
        with self._lock:
            self._pending.add(outer)
        outer.add_done_callback(self._forget)
        _when_done(list(upstream), lambda: self._start(task_run_id, prepare, transport, outer))
        return outer

    def wait(self) -> None:
        """Block until every submitted call has its final state (for the runner's exit)."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.exception()  # waits; never raises the call's error

    def _forget(self, future: Future[State[Any]]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _start(
        self,
        task_run_id: str,
        prepare: Callable[[], TaskCall | State[Any]],
        transport: Transport,
        outer: Future[State[Any]],
    ) -> None:
        from headwater._states import State

        try:
            prepared = prepare()
        except BaseException as exc:
            outer.set_exception(exc)
            return
        if isinstance(prepared, State):
            outer.set_result(prepared)
            return
        self._ship(prepared, transport, outer, 0)

    def _ship(
        self, call: TaskCall, transport: Transport, outer: Future[State[Any]], reships: int
    ) -> None:
        import cloudpickle

        try:
            payload = cloudpickle.dumps(call)
        except Exception as exc:
            outer.set_exception(
                TypeError(
                    f"Task {call.task.name!r} cannot be sent to another process: its function "
                    f"or arguments cannot be pickled ({type(exc).__name__}: {exc}). Pass "
                    "picklable arguments, or run it with the ThreadPoolTaskRunner."
                )
            )
            return
        try:
            inner = self.backend.ship(call, payload, transport.address)
        except BaseException as exc:
            outer.set_exception(exc)
            return
        inner.add_done_callback(lambda done: self._landed(call, transport, outer, reships, done))

    def _landed(
        self,
        call: TaskCall,
        transport: Transport,
        outer: Future[State[Any]],
        reships: int,
        done: Future[bytes],
    ) -> None:
        error = done.exception()
        if error is None:
            returned = unpack(done.result())
            state = returned.state
            if returned.lost:
                outer.set_exception(
                    MissingResult(
                        f"Task run {call.task_run_id} completed in process {returned.pid}, but "
                        f"its result could not be sent back ({returned.lost}). Return a "
                        "picklable value, or persist the result (persist_result=True)."
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
            args=(call, transport, outer, reships, error),
            name="headwater-crashed-task",
            daemon=True,
        ).start()

    def _crashed(
        self,
        call: TaskCall,
        transport: Transport,
        outer: Future[State[Any]],
        reships: int,
        error: BaseException | None,
    ) -> None:
        from headwater._states import Crashed

        try:
            message = self.backend.lost(call, error)
            state = crash_task_run(transport, call.task_run_id, message)
            if state is None and reships < MAX_RESHIPS:
                self._ship(call, transport, outer, reships + 1)
                return
            if state is None:
                state = Crashed(message=message, data=CrashedRun(message))
            outer.set_result(state)
        except BaseException as exc:
            if not outer.done():
                outer.set_exception(exc)


def _when_done(futures: list[Any], then: Callable[[], None]) -> None:
    """Call ``then`` once every future is done (at once when there are none)."""
    if not futures:
        then()
        return
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            then()

    for future in futures:
        future.add_done_callback(one_done)

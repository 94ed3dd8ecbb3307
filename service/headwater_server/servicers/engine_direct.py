"""The embedded engine's direct lane: task run starts and ends straight to the database thread.

An engine in the server's own process already skips the socket (`engine_local`), but each of its
operations still crossed the event loop twice: the caller's thread woke the loop, the loop's
stream session queued the database call, and the database thread woke the loop again to answer,
which woke the caller. On SQLite, where one thread stores everything in the order queued, the
loop adds nothing to the commonest operations, a task run's create-and-start and its end: a
sequential task spent about a third of its time there (two loop wake-ups, the stream's
bookkeeping on both sides). A `DirectLane` queues those operations on the database thread from
the caller's thread and answers them on that thread right after their commit.

A caller that would only wait for the answer (a flow calling a task) may go further: when the
database thread is idle it stores the operations itself, on its own thread, in that thread's
place (`WorkerHop.submit_here` with ``inline``): the hand-over and the wake-up, two thread
switches of about 0.05-0.08 ms each, were a tenth of a trivial task.

What stays the same: the operations are the stream's lean ones (`LeanOperation`), validated by
the same checks, stored by the same repository calls in one transaction per hand-over, each in
its own savepoint, and answered only once committed. The lane takes an operation only where
the stream would take it the lean way, and only while the caller's stream has nothing in
flight (`EngineConnection` checks that), so the database thread sees every operation in the
order the engine sent it: a task run's end after its start, every task's end before its flow
run's final state (which takes the stream). An operation that fails is not answered here: the
caller sends it again over the stream, whose answer carries the error as it always does.

What differs: nothing is written to the request log. The log lets the service answer a request
that arrives twice (resent after a stream broke before its answer came) the way it answered it
the first time. A lane's operation is a call within this process, answered exactly once: it is
never resent after it was stored, and one the lane could not store was rolled back before the
caller resends it over the stream, where it is logged as any other. The log's two rows a
sequential task wrote (its start's answer and its end's, two B-trees each) were a fifth of
what the service spent on the task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from headwater.v1 import engine_pb2

from headwater_server.application.backend import Backend
from headwater_server.application.engine import OPERATIONS, LeanOperation
from headwater_server.storage.hops import RunHere

__all__ = ["DirectLane"]

#: ``deliver(outcomes)``: one answer message or exception per operation, in order.
Deliver = Callable[[list[Any]], object]


class DirectLane:
    """Queues an in-process engine's lean operations on the database thread (thread-safe).

    Args:
        backend: The server's backend.
        owned: Whether the engine names itself (its stream does): decides, as on the stream,
            which operations may take the lean way.
    """

    def __init__(self, backend: Backend, owned: bool) -> None:
        self._backend = backend
        self._owned = owned

    def submit(
        self,
        requests: Sequence[engine_pb2.ConnectRequest],
        deliver: Deliver,
        inline: bool = False,
    ) -> bool | RunHere:
        """Queue ``requests`` as one database call; ``deliver`` gets their outcomes on the
        database thread after the commit (an exception in place of a failed operation's answer).

        Returns False, with nothing queued, when any of them must take the stream: an operation
        with no lean way or not eligible for it, a database that is not SQLite's one thread, a
        server that is stopping. True when queued.

        ``inline``: the caller is a thread that will block until ``deliver`` has run. When the
        database thread is idle, the call is then not queued: the function returned stores
        the requests on the caller's thread in the database thread's place (one transaction
        committed before ``deliver``, which runs on the caller's thread) and must be called
        at once, after the caller lets go of its own locks (`Database.submit_here`).
        """
        backend = self._backend
        db = backend.db
        if backend.stopping.is_set() or not db.ordered:
            return False
        work: list[tuple[LeanOperation, Any]] = []
        for request in requests:
            kind = request.WhichOneof("operation")
            entry = OPERATIONS.get(kind) if kind else None
            lean = entry.lean if entry is not None else None
            if lean is None:
                return False
            operation = getattr(request, kind)
            if not lean.takes(operation, self._owned):
                return False
            work.append((lean, operation))
        repository = db.repository

        def store() -> list[Any]:
            outcomes: list[Any] = []
            for lean, operation in work:
                try:
                    lean.check(operation)
                    outcomes.append(lean.store(repository)(operation, replayable=False))
                except Exception as exc:  # answered over the stream instead (see the module)
                    outcomes.append(exc)
            return outcomes

        def stored(outcomes: list[Any] | None, error: BaseException | None) -> None:
            if error is not None:  # the commit failed: none is stored
                outcomes = [error] * len(work)
            assert outcomes is not None  # a call that did not fail has its outcomes
            for (lean, _operation), outcome in zip(work, outcomes, strict=True):
                if lean.stored is not None and not isinstance(outcome, BaseException):
                    lean.stored(backend)
            deliver(outcomes)

        return db.submit_here(store, stored, inline)

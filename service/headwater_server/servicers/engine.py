"""EngineService.Connect: the one long-lived stream an SDK engine reports through.

Each request carries one operation; it runs the very application operation its unary twin runs
(the table is :data:`headwater_server.application.engine.OPERATIONS`) and the answer echoes the
request's sequence.
An operation is one asyncio task, chained behind the previous operation on the same run, so one
run's proposals apply in the order sent while different runs proceed concurrently; a barrier
operation (a flow run's state proposal) waits for every operation received before it. A failed
operation answers ``OperationError`` and the stream stays open; so does a request whose bytes
cannot be decoded (answered with sequence 0, see :mod:`._decoding`).

A shutdown lets the operations already received finish and answer, then ends the stream with
UNAVAILABLE; operations that arrive meanwhile are not run, and the client resends them to the
next server (transition_id and request_id make that safe).

A client names its process in the stream's metadata (``headwater-engine-id``, a UUID that stays
the same across reconnects, with ``headwater-engine-host`` and ``headwater-engine-pid`` for
people). The session then records the engine as connected, makes it the owner of the flow runs
it creates or starts (and of task runs outside any flow), and records when the stream ends, so
that :mod:`headwater_server.liveness` can end the runs of a process that died.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any

import grpc.aio
from headwater.v1 import engine_pb2, engine_pb2_grpc, states_pb2

from headwater_server import errors
from headwater_server.application.backend import Backend, Operation
from headwater_server.application.engine import OPERATIONS, EngineOperation, LeanOperation
from headwater_server.orchestration import rules
from headwater_server.servicers._common import abort, to_service_error
from headwater_server.servicers._decoding import UndecodableRequest
from headwater_server.stream_spans import traced_operation
from headwater_server.telemetry import stream_tracer

logger = logging.getLogger("headwater_server.engine")


_Response = engine_pb2.ConnectResponse


class _Answer:
    """An operation's result waiting in the outbox, not yet put in a message.

    Copying a result into a ConnectResponse, then that into a batch, cost each answer two
    copies; the sender builds the message it sends with one (`message`, `_add_to`).
    """

    __slots__ = ("kind", "result", "sequence")

    def __init__(self, sequence: int, kind: str, result: Any) -> None:
        self.sequence = sequence
        self.kind = kind
        self.result = result

    def message(self) -> engine_pb2.ConnectResponse:
        response = engine_pb2.ConnectResponse(sequence=self.sequence)
        getattr(response, self.kind).CopyFrom(self.result)
        return response


#: What the outbox holds that answers an operation (anything else marks the stream's end).
_ANSWERS = (_Response, _Answer)

#: Sent as the stream's initial metadata: this server takes and sends ``batch`` messages.
BATCH_METADATA = (("headwater-engine-batch", "1"),)

# Operations one stream may have running at once before the server stops reading from it.
MAX_IN_FLIGHT = 1000

#: Metadata keys a client names its process with (see the module docstring).
ENGINE_ID_KEY = "headwater-engine-id"
ENGINE_HOST_KEY = "headwater-engine-host"
ENGINE_PID_KEY = "headwater-engine-pid"

_RUNNING = states_pb2.STATE_TYPE_RUNNING
_COMPLETED = states_pb2.STATE_TYPE_COMPLETED

#: Operations whose neighbours of the same kind in one batch go to the database in one call:
#: the repository method that stores them together, and which requests may join (it takes the
#: plain ones together and the rest one at a time, each answered as on its own).
_TOGETHER: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "create_task_run": ("create_task_runs", lambda request: bool(request.start)),
    "set_task_run_state": (
        "set_task_run_states",
        lambda request: request.state.type == _COMPLETED,
    ),
}

_END = object()  # the client closed its side and every operation was answered
_SHUTDOWN = object()  # the server is stopping and every operation received was answered


class EngineSession:
    """The state of one Connect stream: in-flight operations and the answers to send."""

    def __init__(self, backend: Backend, engine_id: str | None = None) -> None:
        self._backend = backend
        #: The client process's engine id, or None when it did not name one.
        self.engine_id = engine_id
        #: This stream's token in the engine's row: a newer stream of the engine replaces it.
        self.engine_session = str(uuid.uuid4())
        #: Flow runs this stream already made its engine the owner of.
        self._owned: set[str] = set()
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        #: The last operation of each ordering key not finished yet (a task, or the mark of a
        #: lean operation).
        self._tails: dict[str, asyncio.Future[None]] = {}
        #: Lean operations not answered yet, where a database call of the general way may run
        #: before them (PostgreSQL): resolved on answer; what later operations of their run,
        #: and barriers, wait for. Empty on SQLite, where queueing orders them already.
        self._lean_marks: set[asyncio.Future[None]] = set()
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Whether the client sent a batch: it reads batched answers too.
        self.batches = False
        #: Lean operations queued on the database thread and not answered yet (see `_lean`).
        self._lean_pending = 0
        #: Resolved (and dropped) when any operation answers: what `drain` and the reader's
        #: in-flight limit wait on (one future, however many operations are in flight).
        self._answered: asyncio.Future[None] | None = None

    def submit(self, request: engine_pb2.ConnectRequest) -> None:
        """Start one operation, behind the previous operation on the same run."""
        if self._closed:
            return  # shutting down: unanswered, so the client resends it to the next server
        if isinstance(request, UndecodableRequest):
            # Its sequence is unknown (it is inside the bytes that did not parse), so the answer
            # carries 0; the stream goes on with the next operation.
            self._answer_error(0, request.error())
            return
        kind = request.WhichOneof("operation")
        if kind == "batch":
            self.batches = True
            joined: list[engine_pb2.ConnectRequest] = []
            joined_kind = ""
            for inner in request.batch.requests:
                inner_kind = inner.WhichOneof("operation")
                if inner_kind in _TOGETHER and self._joins(inner_kind, inner):
                    if joined and inner_kind != joined_kind:
                        self._submit_together(joined_kind, joined)
                        joined = []
                    joined_kind = inner_kind
                    joined.append(inner)
                    continue
                if joined:
                    self._submit_together(joined_kind, joined)
                    joined = []
                self._submit_one(inner, inner_kind)
            if joined:
                self._submit_together(joined_kind, joined)
            return
        self._submit_one(request, kind)

    def _takes_lean(self, entry: EngineOperation, operation: Any, key: str | None) -> bool:
        """Whether an operation may run the lean way (see `_lean`) rather than as a task."""
        return (
            entry.lean is not None
            and self._backend.db.ordered
            and entry.lean.takes(operation, self.engine_id is not None)
            and (
                key is None
                or (tail := self._tails.get(key)) is None
                or tail.done()
                or tail in self._lean_marks  # the lean calls run in the order queued
            )
            and stream_tracer() is None  # a traced stream's operations get their spans
        )

    def _joins(self, kind: str, request: engine_pb2.ConnectRequest) -> bool:
        """Whether a batched operation may be stored with its neighbours of the same kind in
        one database call (see `_TOGETHER`): one that would take the lean way on its own."""
        entry = OPERATIONS[kind]
        operation = getattr(request, kind)
        return _TOGETHER[kind][1](operation) and self._takes_lean(
            entry, operation, entry.ordering_key(operation)
        )

    def _submit_together(self, kind: str, requests: list[engine_pb2.ConnectRequest]) -> None:
        """Queue neighbouring operations of one kind from one batch as one database call (lean,
        as each would go on its own), then answer each from its own result."""
        entry = OPERATIONS[kind]
        lean = entry.lean
        assert lean is not None
        if len(requests) == 1:
            operation = getattr(requests[0], kind)
            self._lean(requests[0].sequence, kind, lean, operation, entry.ordering_key(operation))
            return
        checked: list[engine_pb2.ConnectRequest] = []
        for request in requests:
            try:
                lean.check(getattr(request, kind))
            except Exception as exc:
                self._answer_error(
                    request.sequence,
                    to_service_error(exc, f"EngineService/{kind}", getattr(request, kind)),
                )
                continue
            checked.append(request)
        if not checked:
            return
        operations = [getattr(request, kind) for request in checked]
        backend = self._backend
        mark = self._lean_mark()
        try:
            backend.db.submit(
                functools.partial(getattr(backend.db.repository, _TOGETHER[kind][0]), operations),
                functools.partial(self._together_answer, kind, checked, mark),
            )
        except Exception as exc:
            for request, operation in zip(checked, operations, strict=True):
                self._answer_error(
                    request.sequence, to_service_error(exc, f"EngineService/{kind}", operation)
                )
            return
        self._lean_queued(len(checked), mark, map(entry.ordering_key, operations))

    def _together_answer(
        self,
        kind: str,
        requests: list[engine_pb2.ConnectRequest],
        mark: asyncio.Future[None] | None,
        results: list[Any] | None,
        error: BaseException | None,
    ) -> None:
        """Answer each operation of a `_submit_together` call once it is stored (on the loop)."""
        self._lean_settled(len(requests), mark)
        if error is not None and not isinstance(error, Exception):
            raise error  # a KeyboardInterrupt or the like: not ours
        stored = OPERATIONS[kind].lean.stored  # type: ignore[union-attr]  # joined: lean
        for index, request in enumerate(requests):
            outcome = error if error is not None or results is None else results[index]
            if isinstance(outcome, Exception):
                self._answer_error(
                    request.sequence,
                    to_service_error(outcome, f"EngineService/{kind}", getattr(request, kind)),
                )
                continue
            if stored is not None:
                stored(self._backend)
            self.outbox.put_nowait(_Answer(request.sequence, kind, outcome))

    def _submit_one(self, request: engine_pb2.ConnectRequest, kind: str | None) -> None:
        if kind == "batch":
            self._answer_error(
                request.sequence,
                errors.invalid_argument(
                    "batch", "cannot hold another batch: send its operations in the outer one."
                ),
            )
            return
        entry = OPERATIONS.get(kind) if kind else None
        if entry is None:
            self._answer_error(
                request.sequence,
                errors.invalid_argument(
                    "operation",
                    "is required: set exactly one of "
                    + ", ".join([*OPERATIONS, "batch"])
                    + " (or this "
                    "server is older than the client and does not know the operation).",
                ),
            )
            return
        assert kind is not None  # an entry was found for it
        operation = getattr(request, kind)
        key = entry.ordering_key(operation)
        if entry.lean is not None and self._takes_lean(entry, operation, key):
            self._lean(request.sequence, kind, entry.lean, operation, key)
            return
        handler = entry.run
        if self.engine_id is not None and entry.run_owned is not None:
            handler = functools.partial(entry.run_owned, engine_id=self.engine_id)
        handler = traced_operation(handler, kind, request, operation)  # a span when traced
        previous: tuple[asyncio.Future[None], ...] = ()
        if entry.barrier:
            previous = (*self._running, *self._lean_marks)
        elif key is not None and (tail := self._tails.get(key)) is not None:
            previous = (tail,)
        task = asyncio.get_running_loop().create_task(
            self._execute(request.sequence, kind, handler, operation, previous)
        )
        self._running.add(task)
        task.add_done_callback(self._task_done)
        if key is not None:
            self._tails[key] = task
            task.add_done_callback(functools.partial(self._release, key))

    def _lean(
        self, sequence: int, kind: str, lean: LeanOperation, operation: Any, key: str | None
    ) -> None:
        """Run an operation the lean way: validate, queue its one database call, answer from
        its completion (no task; see `LeanOperation`).

        No operation of its run is waiting but lean ones (the caller checked), and the lean
        calls run in the order queued. On SQLite every database call does, so anything
        received later about the same run, and a flow run's final state, is stored after
        this one without waiting for it here; on PostgreSQL those wait for its mark.
        """
        backend = self._backend
        mark = self._lean_mark()
        try:
            lean.check(operation)
            backend.db.submit(
                functools.partial(lean.store(backend.db.repository), operation),
                functools.partial(self._lean_answer, sequence, kind, lean, operation, mark),
            )
        except Exception as exc:
            self._answer_error(sequence, to_service_error(exc, f"EngineService/{kind}", operation))
            return
        self._lean_queued(1, mark, (key,))

    def _lean_mark(self) -> asyncio.Future[None] | None:
        """A mark for lean calls about to be queued, where a database call of the general way
        may run before them (PostgreSQL); None where queueing orders them already (SQLite)."""
        if self._backend.db.lean_after_run:
            return None
        return asyncio.get_running_loop().create_future()

    def _lean_queued(
        self, count: int, mark: asyncio.Future[None] | None, keys: Iterable[str | None]
    ) -> None:
        """``count`` lean operations were queued in one call: wait for them, and make their
        mark what later operations on their runs (``keys``) wait for."""
        self._lean_pending += count
        if mark is None:
            return
        self._lean_marks.add(mark)
        for key in keys:
            if key is not None:
                self._tails[key] = mark
                mark.add_done_callback(functools.partial(self._release, key))

    def _lean_settled(self, count: int, mark: asyncio.Future[None] | None) -> None:
        """``count`` lean operations queued in one call are stored (or failed): release them."""
        self._lean_pending -= count
        self._progressed()
        if mark is not None:
            self._lean_marks.discard(mark)
            mark.set_result(None)

    def _lean_answer(
        self,
        sequence: int,
        kind: str,
        lean: LeanOperation,
        operation: Any,
        mark: asyncio.Future[None] | None,
        result: Any,
        error: BaseException | None,
    ) -> None:
        """Answer a lean operation once its call is stored (on the loop)."""
        self._lean_settled(1, mark)
        if error is not None:
            if not isinstance(error, Exception):  # a KeyboardInterrupt or the like: not ours
                raise error
            self._answer_error(
                sequence, to_service_error(error, f"EngineService/{kind}", operation)
            )
            return
        if lean.stored is not None:
            lean.stored(self._backend)
        self.outbox.put_nowait(_Answer(sequence, kind, result))

    def _in_flight(self) -> int:
        return len(self._running) + self._lean_pending

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._progressed()

    def _progressed(self) -> None:
        """An operation answered (or its task ended): wake `_progress`."""
        answered = self._answered
        if answered is not None:
            self._answered = None
            if not answered.done():
                answered.set_result(None)

    async def _progress(self) -> None:
        """Wait until some operation answers (a task ends or a lean operation answers).

        One future for all of them: waiting on each running task would cost every answer a
        pass over all of them (a thousand operations in flight made that quadratic).
        """
        if not self._in_flight():
            return
        answered = self._answered
        if answered is None or answered.done():  # done: a cancelled wait left it behind
            answered = self._answered = asyncio.get_running_loop().create_future()
        await answered

    async def read(self, requests: AsyncIterator[engine_pb2.ConnectRequest]) -> None:
        """Submit every request the client sends; after its last one, answer all, then end."""
        try:
            async for request in requests:
                await self.accept(request)
        except Exception:  # the client went away mid-read; answer what we have, then end
            logger.debug("Engine stream read ended early", exc_info=True)
        await self.finish()

    async def accept(self, request: engine_pb2.ConnectRequest) -> None:
        """Submit one request message; return once the stream may take the next.

        Past `MAX_IN_FLIGHT` operations it waits for some answer: over gRPC, HTTP/2 flow
        control then slows the client down instead of this stream queueing unbounded work.
        """
        self.submit(request)
        while self._in_flight() >= MAX_IN_FLIGHT:
            await self._progress()

    async def finish(self) -> None:
        """The client sends nothing more: answer everything received, then end the stream."""
        await self.drain()
        if not self._closed:
            self.outbox.put_nowait(_END)

    async def drain(self) -> None:
        """Wait until every operation received so far has answered."""
        while self._in_flight():
            await self._progress()

    async def shutdown(self) -> None:
        """Stop taking operations, let the running ones answer, then end the stream."""
        if self._closed:
            return
        self._closed = True
        await self.drain()
        self.outbox.put_nowait(_SHUTDOWN)

    def cancel(self) -> None:
        """Abandon in-flight operations (the client cancelled the stream)."""
        self._closed = True
        for task in tuple(self._running):
            task.cancel()

    def _release(self, key: str, task: asyncio.Future[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]

    async def _execute(
        self,
        sequence: int,
        kind: str,
        handler: Operation[Any, Any],
        operation: Any,
        previous: tuple[asyncio.Future[None], ...],
    ) -> None:
        waiting = [task for task in previous if not task.done()]
        if waiting:
            await asyncio.wait(waiting)
        try:
            result = await handler(self._backend, operation)
            if self.engine_id is not None and kind in _OWNING:
                await self._own(kind, result)
        except Exception as exc:
            self._answer_error(sequence, to_service_error(exc, f"EngineService/{kind}", operation))
            return
        self.outbox.put_nowait(_Answer(sequence, kind, result))

    async def _own(self, kind: str, result: Any) -> None:
        """Make this engine the owner of a run it just created or started, before answering.

        Flow runs are owned from their create (and again when started, if created elsewhere:
        a deployment's run); task runs only outside any flow, since a task run in a flow run
        ends with its flow run. Owned before the answer goes out, so a process killed right
        after it learns its run started still leaves a run its death can end.
        """
        flow_run_ids: list[str] = []
        task_run_ids: list[str] = []
        if kind == "create_flow_run":
            self._owned.add(result.flow_run.id)  # written with the run (`run_owned`)
            return
        if kind == "set_flow_run_state":
            run = result.flow_run
            if run.id not in self._owned and (
                run.state.type == _RUNNING
                # Waiting for a slot: this engine runs it once one frees, or its death ends it.
                or run.state.name == rules.AWAITING_CONCURRENCY_SLOT
            ):
                flow_run_ids.append(run.id)
        else:
            run = result.task_run
            if not run.flow_run_id and run.state.type == _RUNNING:
                task_run_ids.append(run.id)
        if not flow_run_ids and not task_run_ids:
            return
        assert self.engine_id is not None
        await self._backend.db.run(
            self._backend.db.repository.own_runs, self.engine_id, flow_run_ids, task_run_ids
        )
        self._owned.update(flow_run_ids)

    def _answer_error(self, sequence: int, error: errors.ServiceError) -> None:
        self.outbox.put_nowait(
            engine_pb2.ConnectResponse(
                sequence=sequence,
                error=engine_pb2.OperationError(
                    code=error.code.value[0],
                    reason=error.reason,
                    message=errors.capped(error.message),
                ),
            )
        )


class EngineServicer(engine_pb2_grpc.EngineServiceServicer):
    """The EngineService gRPC method."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def Connect(
        self,
        request_iterator: AsyncIterator[engine_pb2.ConnectRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[engine_pb2.ConnectResponse]:
        """Run the operations the engine sends and stream back their answers."""
        try:
            session = await open_session(self.backend, context.invocation_metadata() or ())
        except errors.ServiceError as exc:
            await abort(context, exc)
        await context.send_initial_metadata(BATCH_METADATA)
        try:
            async for message in run_session(self.backend, session, request_iterator):
                yield message
        except errors.ServiceError as exc:
            await abort(context, exc)


async def open_session(backend: Backend, metadata: Iterable[tuple[str, Any]]) -> EngineSession:
    """Start serving one engine stream whose client sent ``metadata``.

    Raises:
        ServiceError: UNAVAILABLE, the server is stopping; INVALID_ARGUMENT, the engine id in
            the metadata is not a UUID.
    """
    if backend.stopping.is_set():
        raise _going_away()
    engine = _engine_identity(metadata)
    session = EngineSession(backend, engine[0] if engine else None)
    if engine is not None:
        await backend.db.run(
            backend.db.repository.engine_connected,
            engine[0],
            session.engine_session,
            engine[1],
            engine[2],
        )
    backend.engine_sessions.add(session)
    return session


async def run_session(
    backend: Backend,
    session: EngineSession,
    requests: AsyncIterator[engine_pb2.ConnectRequest] | None,
) -> AsyncGenerator[engine_pb2.ConnectResponse, None]:
    """Run the operations read from ``requests`` and yield their answers, in batches where the
    client sends them, until the client's last one is answered.

    Shared by the gRPC method and by the in-process stream of an engine in the server's own
    process (`headwater_server.servicers.engine_local`), which hands its requests to the
    session itself (``requests`` None: `EngineSession.accept`, then `EngineSession.finish`).

    Raises:
        ServiceError: UNAVAILABLE, the server shut down (every operation received before was
            answered first).
    """
    reader = None
    if requests is not None:
        reader = asyncio.get_running_loop().create_task(session.read(requests))
    outbox = session.outbox
    try:
        while True:
            item = await outbox.get()
            if session.batches and not outbox.empty() and isinstance(item, _ANSWERS):
                # Answers that are ready together go in one message.
                item, ending = _batch(item, outbox)
                yield item
                item = ending
                if item is None:
                    continue
            if item is _END:
                return
            if item is _SHUTDOWN:
                break
            yield item.message() if isinstance(item, _Answer) else item
    finally:
        if reader is not None:
            reader.cancel()
        end_session(backend, session)
    raise _going_away()


def end_session(backend: Backend, session: EngineSession) -> None:
    """The stream is over: abandon what is in flight and record that its engine went away."""
    backend.engine_sessions.discard(session)
    session.cancel()
    if session.engine_id is not None and not backend.stopping.is_set():
        # The client went away (or closed its side). A server that is stopping records
        # nothing: its clients reconnect elsewhere, and are not disconnected by it.
        # A task of its own: this RPC's task is being cancelled when the client is gone.
        task = asyncio.get_running_loop().create_task(_record_disconnect(backend, session))
        _recording.add(task)
        task.add_done_callback(_recording.discard)


def _batch(
    first: engine_pb2.ConnectResponse | _Answer, outbox: asyncio.Queue[Any]
) -> tuple[engine_pb2.ConnectResponse, object | None]:
    """``first`` and every answer already waiting in ``outbox``, as one message.

    Returns the message and the end marker met while draining (None when there was none),
    which the caller handles after sending the answers before it.
    """
    batch = engine_pb2.ConnectResponse()
    answers = batch.batch.responses
    _add_to(answers, first)
    while not outbox.empty():
        item = outbox.get_nowait()
        if not isinstance(item, _ANSWERS):
            return batch, item
        _add_to(answers, item)
    return batch, None


def _add_to(answers: Any, item: engine_pb2.ConnectResponse | _Answer) -> None:
    """Append an answer to a batch's responses (a result is copied once, into its place)."""
    if isinstance(item, _Answer):
        getattr(answers.add(sequence=item.sequence), item.kind).CopyFrom(item.result)
    else:
        answers.append(item)


#: Disconnects being recorded (a reference each, so the loop does not drop the task).
_recording: set[asyncio.Task[None]] = set()

#: Operations whose answer may make the stream's engine the owner of a run.
_OWNING = frozenset(
    {"create_flow_run", "set_flow_run_state", "create_task_run", "set_task_run_state"}
)


def _engine_identity(metadata: Any) -> tuple[str, str, int] | None:
    """(engine id, host, pid) from the stream's metadata; None when the client sent no id.

    Raises:
        ServiceError: INVALID_ARGUMENT, the id is not a UUID.
    """
    values = {key: value for key, value in metadata if isinstance(value, str)}
    raw_id = values.get(ENGINE_ID_KEY, "")
    if not raw_id:
        return None
    try:
        engine_id = str(uuid.UUID(raw_id))
    except ValueError:
        raise errors.invalid_argument(
            ENGINE_ID_KEY,
            f"metadata {errors.shown(raw_id)} is not a UUID: name the process with one UUID "
            "that stays the same across reconnects, or leave it out.",
        ) from None
    try:
        pid = max(int(values.get(ENGINE_PID_KEY, "0")), 0)
    except ValueError:
        pid = 0
    host = errors.capped(values.get(ENGINE_HOST_KEY, ""))[:255]
    return engine_id, host, pid


async def _record_disconnect(backend: Backend, session: EngineSession) -> None:
    assert session.engine_id is not None
    try:
        await backend.db.run(
            backend.db.repository.engine_disconnected, session.engine_id, session.engine_session
        )
    except Exception:  # the database is closing; the engine's row then times out instead
        logger.debug("Recording an engine disconnect failed", exc_info=True)


def _going_away() -> errors.ServiceError:
    return errors.unavailable(
        "The Headwater server is shutting down. Reconnect (to this address once it is back, or "
        "to another server) and resend the operations that got no answer."
    )

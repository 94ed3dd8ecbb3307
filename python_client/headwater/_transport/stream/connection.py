"""`EngineConnection`: the engine's thread-safe handle on one ``EngineService.Connect`` stream.

A request and its answer on an open stream cost about a third of a unary call, and the engine
makes several per task, so every engine operation in a process goes through one stream:

- a daemon thread runs an asyncio loop (`headwater._transport.loop`) that owns a grpc.aio
  channel and the stream (`headwater._transport.stream.reconnect`);
- callers on any thread hand an operation (`headwater._transport.stream.ops`) to that loop;
  the loop numbers it and keeps it until its answer arrives
  (`headwater._transport.stream.protocol`);
- when the stream breaks, the loop reopens it with backoff and sends every unanswered operation
  again; operations still unanswered after ``client_retry_timeout_seconds`` fail with
  `ServiceUnavailable`.

This module is the caller's side of that hand-off: one method per operation, sync and async.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

from headwater._telemetry import trace_stamper
from headwater._transport.stream.holding import HeldOps
from headwater._transport.stream.ops import (
    AsyncOp,
    FlushWaiter,
    NowaitOp,
    Op,
    RecordedOp,
    SyncOp,
    settle_future,
)
from headwater._transport.stream.protocol import (
    OperationTable,
    check_size,
    with_request_id,
    with_transition_id,
)
from headwater._transport.stream.reconnect import EngineStream, LocalConnect
from headwater.v1 import engine_pb2

if TYPE_CHECKING:
    from headwater._transport.loop import BackgroundLoop
    from headwater.v1 import flow_runs_pb2, logs_pb2, task_runs_pb2

__all__ = ["EngineConnection"]

_Request = engine_pb2.ConnectRequest

#: ``direct(requests, deliver, inline) -> taken``: the embedded server's direct lane (see
#: `_hand_over`): False (not taken), True (queued), or the function that stores them here.
DirectSubmit = Callable[
    [list[engine_pb2.ConnectRequest], Callable[[list[Any]], object], bool],
    bool | Callable[[], None],
]


class EngineConnection:
    """One grpc.aio channel and one ``EngineService.Connect`` stream, shared by every thread.

    Use `headwater._transport.runtime` (`default_transport`, `connect`) rather than building
    one, so a process holds one stream per service and closes it at exit. Every method is
    thread-safe. The sync methods block the calling thread until the answer arrives; the
    ``a``-prefixed twins are awaitable from any event loop.

    Raises (from every operation):
        InvalidRequest, ObjectNotFound, ObjectAlreadyExists, FailedPrecondition, ServiceError:
            the service refused the operation (its message says why).
        ServiceUnavailable: the service stayed unreachable for ``retry_timeout`` seconds.
    """

    def __init__(
        self,
        address: str,
        *,
        loop: BackgroundLoop,
        retry_timeout: float | None = None,
        keepalive_time_ms: int | None = None,
        local: LocalConnect | None = None,
        direct: DirectSubmit | None = None,
    ) -> None:
        """Open the channel and start the stream on the background loop.

        Args:
            address: The gRPC target, e.g. "127.0.0.1:4200" or "unix-abstract:name".
            loop: The background loop that runs the channel and the stream.
            retry_timeout: Seconds to keep reconnecting before failing operations; defaults
                to ``HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS``.
            keepalive_time_ms: The keepalive ping interval; defaults to
                ``HEADWATER_KEEPALIVE_TIME_MS``.
            local: Opens the stream in-process instead of over the channel, for the server
                running on ``loop`` itself (the embedded one); see `EngineStream`.
            direct: The same server's direct lane (``EmbeddedServer.submit_direct``): task
                run starts and ends handed over while the stream is idle go straight to its
                database thread, or are stored on the caller's (see `_hand_over`).
        """
        if retry_timeout is None or keepalive_time_ms is None:
            from headwater._settings import get_settings

            settings = get_settings()
            if retry_timeout is None:
                retry_timeout = settings.client_retry_timeout_seconds
            if keepalive_time_ms is None:
                keepalive_time_ms = settings.keepalive_time_ms
        self.address = address
        self.retry_timeout = retry_timeout
        self._background = loop
        self._loop = loop.loop
        # Both are touched only on the background loop (but `closed` is read anywhere).
        self._ops = OperationTable(address)
        self._stamp = trace_stamper(address)  # tracing hook (headwater._telemetry)
        self._stream = EngineStream(
            address, keepalive_time_ms, self._ops, retry_timeout, local=local
        )
        if loop.in_loop_thread():
            self._stream.start()  # already on the loop: waiting for it would deadlock
        else:
            loop.run_sync(self._astart())
        self._loop_thread_id = loop.thread.ident or 0
        # Operations handed over by other threads, waiting for the loop to take them: one
        # wake-up of the loop takes all that arrived meanwhile (a thousand ``.submit()`` calls
        # cost a handful of wake-ups, and leave together in a few ``batch`` messages).
        self._inbox: list[Op] = []
        self._inbox_lock = threading.Lock()
        self._wake_pending = False
        # Whether the loop is moving the inbox into the operation table (neither holds them).
        self._taking = False
        # The direct lane: operations handed to it, and answered, so far (under the inbox
        # lock; answered in order), and `flush`'s callbacks waiting for a count.
        self._direct = direct
        self._direct_sent = 0
        self._direct_here = 0  # of them, stored on the caller's thread
        self._direct_answered = 0
        self._direct_waiters: list[tuple[int, Callable[[], object]]] = []
        # No-wait task states waiting to ride with the next operation (see holding.py).
        self._held = HeldOps(self._loop, self._submit_held)
        #: How many ``WatchFlowRun`` calls the engine opened (cancellation watches); for tests.
        self.watches_opened = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The background loop that owns the channel and the stream."""
        return self._loop

    @property
    def in_process(self) -> bool:
        """Whether the stream reaches its server without a socket (the embedded server's own
        engine; see `headwater._transport.embedded`)."""
        return self._stream.in_process

    @property
    def streams_opened(self) -> int:
        """How many streams were opened (1 + reconnects); for tests and diagnostics."""
        return self._stream.streams_opened

    @property
    def resent(self) -> int:
        """How many operations were sent again on a new stream."""
        return self._stream.resent

    @property
    def messages_sent(self) -> int:
        """How many messages were written on the stream (a batch of operations counts once)."""
        return self._stream.messages_sent

    @property
    def direct_sent(self) -> int:
        """How many operations went the direct lane (see `_hand_over`); for tests."""
        return self._direct_sent

    @property
    def direct_here(self) -> int:
        """How many of `direct_sent` the caller's own thread stored (see `_hand_over`)."""
        return self._direct_here

    @property
    def messages_received(self) -> int:
        """How many messages were read from the stream (a batch of answers counts once)."""
        return self._stream.messages_received

    @property
    def reconnects(self) -> int:
        """How many times the stream was reopened after a backoff."""
        return self._stream.reconnects

    # ----------------------------------------------------------------- sync operations

    def create_flow_run(
        self, req: flow_runs_pb2.CreateFlowRunRequest
    ) -> flow_runs_pb2.CreateFlowRunResponse:
        """Create a flow run (as ``FlowRunService.CreateFlowRun``)."""
        return cast(
            "flow_runs_pb2.CreateFlowRunResponse",
            self._call(with_request_id(_Request(create_flow_run=req))),
        )

    def set_flow_run_state(
        self, req: flow_runs_pb2.SetFlowRunStateRequest
    ) -> flow_runs_pb2.SetFlowRunStateResponse:
        """Propose a flow run state; the decision is in the response, not an exception."""
        return cast(
            "flow_runs_pb2.SetFlowRunStateResponse",
            self._call(with_transition_id(_Request(set_flow_run_state=req))),
        )

    def get_flow_run(
        self, req: flow_runs_pb2.GetFlowRunRequest
    ) -> flow_runs_pb2.GetFlowRunResponse:
        """Read a flow run with its current state."""
        return cast("flow_runs_pb2.GetFlowRunResponse", self._call(_Request(get_flow_run=req)))

    def create_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """Create a task run (and with ``start``, propose RUNNING in the same call)."""
        return cast(
            "task_runs_pb2.CreateTaskRunResponse",
            self._call(with_request_id(_Request(create_task_run=req))),
        )

    def create_task_run_then(
        self,
        req: task_runs_pb2.CreateTaskRunRequest,
        record: Callable[[Any, BaseException | None], object],
    ) -> None:
        """Create (and with ``start``, start) a task run without blocking.

        ``record`` gets the answer or the error on the loop. Creates handed over together from
        other threads reach the loop in one wake-up and leave in as few messages as the
        stream's batches allow; `flush` waits for them like any other operation.
        """
        self.send_then(with_request_id(_Request(create_task_run=req)), record)

    def set_task_run_state(
        self, req: task_runs_pb2.SetTaskRunStateRequest
    ) -> task_runs_pb2.SetTaskRunStateResponse:
        """Propose a task run state; the decision is in the response."""
        return cast(
            "task_runs_pb2.SetTaskRunStateResponse",
            self._call(with_transition_id(_Request(set_task_run_state=req))),
        )

    def set_task_run_state_nowait(
        self,
        req: task_runs_pb2.SetTaskRunStateRequest,
        record: Callable[[Any, BaseException | None], object],
    ) -> None:
        """Propose a task run state without waiting; ``record`` gets the outcome on the loop.

        `flush` waits for it like any other operation.
        """
        self.send_held(with_transition_id(_Request(set_task_run_state=req)), record)

    # ------------------------------------------------- operations built by the caller
    #
    # The engine's hottest operations (a task run's start and end) are built by the transport
    # directly inside a ``ConnectRequest``, with their ``request_id`` or ``transition_id``
    # already set: wrapping a finished inner request would copy it, and looking its
    # idempotency field up by name costs as much again.

    def call(self, request: engine_pb2.ConnectRequest) -> Any:
        """Send a complete operation and wait for its answer (the matching response member).

        The caller sets the operation's ``request_id`` or ``transition_id``.
        """
        return self._call(request)

    async def acall(self, request: engine_pb2.ConnectRequest) -> Any:
        """Async twin of `call`."""
        return await self._acall(request)

    def send_then(
        self,
        request: engine_pb2.ConnectRequest,
        record: Callable[[Any, BaseException | None], object],
    ) -> None:
        """Send a complete operation without blocking; ``record`` gets its outcome on the loop."""
        self._submit(self._recorded(request, record))

    def send_held(
        self,
        request: engine_pb2.ConnectRequest,
        record: Callable[[Any, BaseException | None], object],
        *,
        any_thread: bool = False,
    ) -> None:
        """Like `send_then`, but the operation rides with the next one (see holding.py).

        ``any_thread``: ``record`` is thread-safe, so the direct lane may call it on the
        database thread rather than the loop.
        """
        op = self._recorded(request, record)
        op.any_thread = any_thread
        self._held.hold(op)

    def _recorded(
        self,
        request: engine_pb2.ConnectRequest,
        record: Callable[[Any, BaseException | None], object],
    ) -> RecordedOp:
        """The no-wait operation for ``request``, checked before anything is sent."""
        if self._ops.closed:
            raise self._ops.closed_error()
        self._stamp(request)  # tracing hook: the server's span for it joins the trace
        check_size(request)
        return RecordedOp(request, record)

    def create_logs(self, req: logs_pb2.CreateLogsRequest) -> logs_pb2.CreateLogsResponse:
        """Store log lines and wait until they are stored."""
        return cast(
            "logs_pb2.CreateLogsResponse", self._call(with_request_id(_Request(create_logs=req)))
        )

    def create_logs_nowait(self, req: logs_pb2.CreateLogsRequest) -> None:
        """Send log lines without waiting; `flush` waits for them. Failures go to stderr."""
        if self._ops.closed:
            raise self._ops.closed_error()
        request = with_request_id(_Request(create_logs=req))
        check_size(request)
        self._submit(NowaitOp(request))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every operation sent so far (including no-wait ones) is answered.

        Raises:
            TimeoutError: Some operations are still unanswered after ``timeout`` seconds.
        """
        if self._on_loop_thread():
            raise RuntimeError("flush() would block Headwater's background loop; use aflush().")
        if self._ops.closed:
            return
        flushed = threading.Lock()
        flushed.acquire()
        self._release_held()
        waiter = FlushWaiter(flushed.release)
        self._after_direct(
            lambda: self._loop.call_soon_threadsafe(self._ops.add_flush_waiter, waiter)
        )
        if not flushed.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(
                f"Operations sent to the Headwater service at {self.address} were still "
                f"unanswered after {timeout} s."
            ) from None

    # ---------------------------------------------------------------- async operations

    async def acreate_flow_run(
        self, req: flow_runs_pb2.CreateFlowRunRequest
    ) -> flow_runs_pb2.CreateFlowRunResponse:
        """Async twin of `create_flow_run`."""
        return cast(
            "flow_runs_pb2.CreateFlowRunResponse",
            await self._acall(with_request_id(_Request(create_flow_run=req))),
        )

    async def aset_flow_run_state(
        self, req: flow_runs_pb2.SetFlowRunStateRequest
    ) -> flow_runs_pb2.SetFlowRunStateResponse:
        """Async twin of `set_flow_run_state`."""
        return cast(
            "flow_runs_pb2.SetFlowRunStateResponse",
            await self._acall(with_transition_id(_Request(set_flow_run_state=req))),
        )

    async def aget_flow_run(
        self, req: flow_runs_pb2.GetFlowRunRequest
    ) -> flow_runs_pb2.GetFlowRunResponse:
        """Async twin of `get_flow_run`."""
        return cast(
            "flow_runs_pb2.GetFlowRunResponse", await self._acall(_Request(get_flow_run=req))
        )

    async def acreate_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """Async twin of `create_task_run`."""
        return cast(
            "task_runs_pb2.CreateTaskRunResponse",
            await self._acall(with_request_id(_Request(create_task_run=req))),
        )

    async def aset_task_run_state(
        self, req: task_runs_pb2.SetTaskRunStateRequest
    ) -> task_runs_pb2.SetTaskRunStateResponse:
        """Async twin of `set_task_run_state`."""
        return cast(
            "task_runs_pb2.SetTaskRunStateResponse",
            await self._acall(with_transition_id(_Request(set_task_run_state=req))),
        )

    async def acreate_logs(self, req: logs_pb2.CreateLogsRequest) -> logs_pb2.CreateLogsResponse:
        """Async twin of `create_logs`."""
        return cast(
            "logs_pb2.CreateLogsResponse",
            await self._acall(with_request_id(_Request(create_logs=req))),
        )

    async def aflush(self) -> None:
        """Async twin of `flush` (no timeout: wrap it in `asyncio.wait_for`)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        on_loop = loop is self._loop

        def _release() -> None:
            if on_loop:
                settle_future(done, None, None)
            else:
                loop.call_soon_threadsafe(settle_future, done, None, None)

        waiter = FlushWaiter(_release)
        self._release_held()
        register_later = functools.partial(
            self._loop.call_soon_threadsafe, self._ops.add_flush_waiter, waiter
        )
        # While the direct lane holds operations, registered once it has answered them.
        if not self._after_direct(register_later, now=False):
            if on_loop:
                self._ops.add_flush_waiter(waiter)
            else:
                register_later()
        await done

    async def awatch_flow_run(
        self, req: flow_runs_pb2.WatchFlowRunRequest
    ) -> AsyncIterator[flow_runs_pb2.WatchFlowRunResponse]:
        """``FlowRunService.WatchFlowRun`` on this connection's channel (no second transport).

        Runs on the background loop only (the channel's loop). The stream is cancelled when
        the caller stops iterating.

        Raises:
            grpc.aio.AioRpcError: The watch failed or broke; the caller decides to watch again.
            ServiceUnavailable: The connection is closed.
        """
        from headwater.v1 import flow_runs_pb2_grpc

        channel = self._stream.channel
        if self._ops.closed or channel is None:
            raise self._ops.closed_error()
        self.watches_opened += 1
        call = flow_runs_pb2_grpc.FlowRunServiceStub(channel).WatchFlowRun(req)
        try:
            async for message in call:
                yield message
        finally:
            call.cancel()

    # ---------------------------------------------------------------------- lifecycle

    def close(self, timeout: float | None = 5.0) -> None:
        """Flush (up to ``timeout`` seconds), then close the stream and the channel.

        Operations still unanswered then fail with `ServiceUnavailable`, and so do operations
        sent afterwards.
        """
        if self._ops.closed or self._on_loop_thread():
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            self.flush(timeout)
        # RuntimeError/TimeoutError: the loop is gone (interpreter shutdown); nothing to close.
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._background.run_sync(self._aclose(), timeout=10)

    def __repr__(self) -> str:
        return f"EngineConnection(address={self.address!r})"

    # ---------------------------------------------------------------------- internals

    def _on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread_id

    def _call(self, request: engine_pb2.ConnectRequest) -> Any:
        # The answer is the ConnectResponse member that matches the request's operation; its
        # type follows from the request, so each public method casts it to its response type.
        if self._ops.closed:  # also: the loop may be stopped, and nothing would ever answer
            raise self._ops.closed_error()
        if self._on_loop_thread():
            raise RuntimeError(
                "A blocking Headwater call was made on Headwater's background loop; "
                "use the async twin (a-prefixed method) there."
            )
        self._stamp(request)  # tracing hook: the server's span for it joins the trace
        check_size(request)
        op = SyncOp(request)
        self._submit(op)
        return op.wait()

    async def _acall(self, request: engine_pb2.ConnectRequest) -> Any:
        if self._ops.closed:
            raise self._ops.closed_error()
        self._stamp(request)  # tracing hook: the server's span for it joins the trace
        check_size(request)
        loop = asyncio.get_running_loop()
        op = AsyncOp(request, loop, same_loop=loop is self._loop)
        self._submit(op)
        return await op.future

    def _submit(self, op: Op) -> None:
        """Hand ``op`` to the loop, behind whatever is held (which rides with it)."""
        self._hand_over([op])

    def _release_held(self) -> None:
        """Send what is held now (a flush must wait for it too)."""
        self._hand_over([])

    def _hand_over(self, ops: list[Op]) -> None:
        """Put what is held, then ``ops``, in the inbox; wake the loop unless it is due anyway.

        With a direct lane, operations it can take go there instead, while nothing is in flight
        on the stream: its database thread then stores them in hand-over order with everything
        sent before (answered already) and after (queued behind them). When this thread is
        about to wait for their answer anyway, and the database thread is idle, the lane lets
        it store them itself: then after the inbox lock is let go (the answer's bookkeeping,
        `_direct_done`, takes it; other threads need not wait for a transaction), still ahead
        of anything handed over later, which the lane queues behind it.
        """
        if self._on_loop_thread():
            self._take_inbox()
            for op in [*self._held.take(), *ops]:
                self._ops.submit(op)
            return
        taken: bool | Callable[[], None] = False
        wake = False
        try:
            with self._inbox_lock:
                ops = self._held.take() + ops
                if not ops:
                    return
                if (
                    self._direct is not None
                    and not self._inbox
                    and not self._taking
                    and not self._ops.pending
                    and all(op.any_thread for op in ops)
                ):
                    taken = self._direct(
                        [op.request for op in ops],
                        functools.partial(self._direct_done, ops),
                        any(op.waited for op in ops),
                    )
                if taken:
                    self._direct_sent += len(ops)
                    if taken is not True:
                        self._direct_here += len(ops)
                else:
                    wake = self._to_inbox(ops)
        finally:
            # Stored here (`_direct_done` answers them), even when something like Ctrl-C
            # interrupts this thread in between: the lane has reserved the database for this
            # call, and a reservation never run would stall every write after it.
            if taken is not False and taken is not True:
                taken()
        if taken:
            return
        if wake:
            self._loop.call_soon_threadsafe(self._take_inbox)

    def _to_stream(self, ops: list[Op]) -> None:
        """Hand ``ops`` to the stream (never the direct lane), from any thread."""
        with self._inbox_lock:
            wake = self._to_inbox(ops)
        if wake:
            self._loop.call_soon_threadsafe(self._take_inbox)

    def _to_inbox(self, ops: list[Op]) -> bool:
        """Under the inbox lock: queue ``ops`` for the loop; whether the loop must be woken
        (it is not when it is due to take the inbox anyway)."""
        self._inbox.extend(ops)
        if self._wake_pending:
            return False
        self._wake_pending = True
        return True

    def _direct_done(self, ops: list[Op], outcomes: list[Any]) -> None:
        """On the database thread (or the thread that stored them in its place): answer what
        the direct lane stored; send what failed over the stream, whose answer carries the
        error (the lane's operation was rolled back)."""
        failed = [
            op
            for op, outcome in zip(ops, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        ]
        if failed:  # first: what the answers below wake then queues behind them
            self._to_stream(failed)
        for op, outcome in zip(ops, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                op.resolve(outcome, None)
        due: list[Callable[[], object]] = []
        with self._inbox_lock:
            self._direct_answered += len(ops)
            if self._direct_waiters:
                answered = self._direct_answered
                due = [call for limit, call in self._direct_waiters if limit <= answered]
                self._direct_waiters = [w for w in self._direct_waiters if w[0] > answered]
        for call in due:
            call()

    def _after_direct(self, call: Callable[[], object], now: bool = True) -> bool:
        """Run ``call`` once the direct lane has answered everything handed to it so far.

        Returns whether it was deferred; when nothing is pending it runs at once if ``now``
        (else the caller runs its own immediate path).
        """
        with self._inbox_lock:
            if self._direct_answered < self._direct_sent:
                self._direct_waiters.append((self._direct_sent, call))
                return True
        if now:
            call()
        return False

    def _take_inbox(self) -> None:
        """On the loop: register every operation handed over so far, in hand-over order."""
        with self._inbox_lock:
            ops, self._inbox = self._inbox, []
            self._wake_pending = False
            self._taking = bool(ops)
        submit = self._ops.submit
        try:
            for op in ops:
                submit(op)
        finally:
            if ops:
                with self._inbox_lock:
                    self._taking = False

    def _submit_held(self, op: Op) -> None:
        """On the loop: send a held operation whose wait is over, behind the inbox."""
        self._take_inbox()
        self._ops.submit(op)

    async def _astart(self) -> None:
        self._stream.start()

    async def _aclose(self) -> None:
        if self._ops.closed:
            return
        self._ops.closed = True
        await self._stream.stop()
        self._ops.close()
        await self._stream.close_channel()

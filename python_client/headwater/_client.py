"""The engine's connection to the service: one long-lived ``EngineService.Connect`` stream.

A request and its answer on an open stream cost about a third of a unary call, and the engine
makes several per task, so every engine operation in a process goes through one stream:

- a daemon thread runs an asyncio loop (`headwater._loop`) that owns a grpc.aio channel and
  the stream;
- callers on any thread hand an operation to that loop; the loop numbers it (``sequence``),
  keeps it in ``_pending`` until its answer arrives, and a writer task puts it on the wire;
- a reader task matches each answer to its operation by sequence and wakes the caller: a sync
  caller blocks on a plain lock (cheaper than a `concurrent.futures.Future`), an async caller
  awaits a future of its own loop;
- when the stream breaks (the server restarts), the loop reopens it with backoff and sends
  every unanswered operation again. That is safe because each mutating operation carries a
  ``transition_id`` or ``request_id`` (added here when the caller left it empty), so the server
  answers a repeat with its first answer and applies nothing twice. Operations still unanswered
  after ``client_retry_timeout_seconds`` fail with `ServiceUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from headwater import _loop
from headwater._status import from_operation_error, from_rpc_error
from headwater.exceptions import InvalidRequest, ServiceError, ServiceUnavailable
from headwater.v1 import engine_pb2, engine_pb2_grpc

if TYPE_CHECKING:
    from headwater.v1 import flow_runs_pb2, logs_pb2, task_runs_pb2

__all__ = ["EngineConnection", "channel_options", "close_connection", "get_connection"]

#: The largest message the client sends or accepts. The server's default limit is 4 MiB, so
#: results bigger than that belong in result storage, not inline.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_INITIAL_BACKOFF = 0.1
_MAX_BACKOFF = 2.0
# After this many seconds of outage with callers waiting, say so on stderr (once).
_WARN_AFTER = 5.0

# Status codes that mean "the stream broke, the operations did not fail": reconnect and resend.
# CANCELLED and INTERNAL appear when a server goes away mid-stream (a GOAWAY or a reset).
_RECONNECT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


def channel_options(keepalive_time_ms: int) -> list[tuple[str, Any]]:
    """The channel options every Headwater client uses.

    Keepalive pings keep idle streams (long waits, watches) alive through proxies and detect a
    dead peer; the server permits them. The reconnect backoff is capped low because a local
    server restarts in about a second, and gRPC's default cap of two minutes would keep the
    channel failing long after the server is back.
    """
    return [
        ("grpc.keepalive_time_ms", keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


class _Op:
    """One operation on the stream, from submission to its answer or its failure."""

    __slots__ = ("request", "submitted")

    def __init__(self, request: engine_pb2.ConnectRequest) -> None:
        self.request = request
        self.submitted = time.monotonic()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        """Deliver the outcome; called on the background loop exactly once."""
        raise NotImplementedError


class _SyncOp(_Op):
    """An operation a thread waits for: a released lock is the cheapest wake-up CPython has."""

    __slots__ = ("_done", "error", "response")

    def __init__(self, request: engine_pb2.ConnectRequest) -> None:
        super().__init__(request)
        self.response: Any = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        self.response = response
        self.error = error
        self._done.release()

    def wait(self, timeout: float | None = None) -> Any:
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("no answer from the Headwater service in time")
        if self.error is not None:
            raise self.error
        return self.response


class _AsyncOp(_Op):
    """An operation awaited on some event loop, possibly not the background one."""

    __slots__ = ("future", "loop", "same_loop")

    def __init__(
        self, request: engine_pb2.ConnectRequest, loop: asyncio.AbstractEventLoop, same_loop: bool
    ) -> None:
        super().__init__(request)
        self.loop = loop
        self.same_loop = same_loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        if self.same_loop:
            _settle(self.future, response, error)
        else:
            # RuntimeError: the caller's loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_settle, self.future, response, error)


def _settle(future: asyncio.Future[Any], response: Any, error: BaseException | None) -> None:
    if future.done():
        return  # the awaiting task was cancelled
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(response)


class _NowaitOp(_Op):
    """A fire-and-forget operation (log lines): nobody waits, so a failure is only reported."""

    __slots__ = ()

    def resolve(self, response: Any, error: BaseException | None) -> None:
        if error is not None:
            print(f"headwater: an operation sent without waiting failed: {error}", file=sys.stderr)


class _FlushWaiter:
    """`flush` waits until every operation up to ``limit`` is answered, then calls back."""

    __slots__ = ("callback", "limit")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.limit = 0

    def resolve(self) -> None:
        self.callback()


class EngineConnection:
    """One grpc.aio channel and one ``EngineService.Connect`` stream, shared by every thread.

    Use `get_connection` rather than building one, so a process holds one stream. Every method
    is thread-safe. The sync methods block the calling thread until the answer arrives; the
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
        retry_timeout: float | None = None,
        keepalive_time_ms: int | None = None,
    ) -> None:
        """Open the channel and start the stream on the background loop.

        Args:
            address: The gRPC target, e.g. "127.0.0.1:4200" or "unix-abstract:name".
            retry_timeout: Seconds to keep reconnecting before failing operations; defaults
                to ``HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS``.
            keepalive_time_ms: The keepalive ping interval; defaults to
                ``HEADWATER_KEEPALIVE_TIME_MS``.
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
        self._keepalive_time_ms = keepalive_time_ms
        self._loop = _loop.get_background_loop()
        # Everything below is touched only on the background loop.
        self._pending: dict[int, _Op] = {}
        self._next_sequence = 1
        self._queue: asyncio.Queue[_Op] | None = None
        self._flush_waiters: list[_FlushWaiter] = []
        self._demand: asyncio.Event | None = None
        self._closed = False
        self._channel: grpc.aio.Channel | None = None
        self._runner: asyncio.Task[None] | None = None
        self._last_error = ""
        #: How many streams were opened (1 + reconnects) and operations sent again on a new
        #: stream; for tests and diagnostics.
        self.streams_opened = 0
        self.resent = 0
        self.reconnects = 0
        if _loop.in_background_loop():
            self._start()  # already on the loop: waiting for it would deadlock
        else:
            _loop.run_sync(self._astart())
        self._loop_thread_id = _loop_thread_id(self._loop)

    # ----------------------------------------------------------------- sync operations

    def create_flow_run(
        self, req: flow_runs_pb2.CreateFlowRunRequest
    ) -> flow_runs_pb2.CreateFlowRunResponse:
        """Create a flow run (as ``FlowRunService.CreateFlowRun``)."""
        return self._call(_with_request_id(engine_pb2.ConnectRequest(create_flow_run=req)))

    def set_flow_run_state(
        self, req: flow_runs_pb2.SetFlowRunStateRequest
    ) -> flow_runs_pb2.SetFlowRunStateResponse:
        """Propose a flow run state; the decision is in the response, not an exception."""
        return self._call(_with_transition_id(engine_pb2.ConnectRequest(set_flow_run_state=req)))

    def get_flow_run(
        self, req: flow_runs_pb2.GetFlowRunRequest
    ) -> flow_runs_pb2.GetFlowRunResponse:
        """Read a flow run with its current state."""
        return self._call(engine_pb2.ConnectRequest(get_flow_run=req))

    def create_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """Create a task run inside a flow run."""
        return self._call(_with_request_id(engine_pb2.ConnectRequest(create_task_run=req)))

    def set_task_run_state(
        self, req: task_runs_pb2.SetTaskRunStateRequest
    ) -> task_runs_pb2.SetTaskRunStateResponse:
        """Propose a task run state; the decision is in the response."""
        return self._call(_with_transition_id(engine_pb2.ConnectRequest(set_task_run_state=req)))

    def create_logs(self, req: logs_pb2.CreateLogsRequest) -> logs_pb2.CreateLogsResponse:
        """Store log lines and wait until they are stored."""
        return self._call(_with_request_id(engine_pb2.ConnectRequest(create_logs=req)))

    def create_logs_nowait(self, req: logs_pb2.CreateLogsRequest) -> None:
        """Send log lines without waiting; `flush` waits for them. Failures go to stderr."""
        if self._closed:
            raise self._closed_error()
        request = _with_request_id(engine_pb2.ConnectRequest(create_logs=req))
        self._check_size(request)
        self._loop.call_soon_threadsafe(self._submit, _NowaitOp(request))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every operation sent so far (including no-wait ones) is answered.

        Raises:
            TimeoutError: Some operations are still unanswered after ``timeout`` seconds.
        """
        if self._on_loop_thread():
            raise RuntimeError("flush() would block Headwater's background loop; use aflush().")
        if self._closed:
            return
        flushed = threading.Lock()
        flushed.acquire()
        self._loop.call_soon_threadsafe(self._add_flush_waiter, _FlushWaiter(flushed.release))
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
        return await self._acall(_with_request_id(engine_pb2.ConnectRequest(create_flow_run=req)))

    async def aset_flow_run_state(
        self, req: flow_runs_pb2.SetFlowRunStateRequest
    ) -> flow_runs_pb2.SetFlowRunStateResponse:
        """Async twin of `set_flow_run_state`."""
        return await self._acall(
            _with_transition_id(engine_pb2.ConnectRequest(set_flow_run_state=req))
        )

    async def aget_flow_run(
        self, req: flow_runs_pb2.GetFlowRunRequest
    ) -> flow_runs_pb2.GetFlowRunResponse:
        """Async twin of `get_flow_run`."""
        return await self._acall(engine_pb2.ConnectRequest(get_flow_run=req))

    async def acreate_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """Async twin of `create_task_run`."""
        return await self._acall(_with_request_id(engine_pb2.ConnectRequest(create_task_run=req)))

    async def aset_task_run_state(
        self, req: task_runs_pb2.SetTaskRunStateRequest
    ) -> task_runs_pb2.SetTaskRunStateResponse:
        """Async twin of `set_task_run_state`."""
        return await self._acall(
            _with_transition_id(engine_pb2.ConnectRequest(set_task_run_state=req))
        )

    async def acreate_logs(self, req: logs_pb2.CreateLogsRequest) -> logs_pb2.CreateLogsResponse:
        """Async twin of `create_logs`."""
        return await self._acall(_with_request_id(engine_pb2.ConnectRequest(create_logs=req)))

    async def aflush(self) -> None:
        """Async twin of `flush` (no timeout: wrap it in `asyncio.wait_for`)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        on_loop = loop is self._loop

        def _release() -> None:
            if on_loop:
                _settle(done, None, None)
            else:
                loop.call_soon_threadsafe(_settle, done, None, None)

        waiter = _FlushWaiter(_release)
        if on_loop:
            self._add_flush_waiter(waiter)
        else:
            self._loop.call_soon_threadsafe(self._add_flush_waiter, waiter)
        await done

    # ---------------------------------------------------------------------- lifecycle

    def close(self, timeout: float | None = 5.0) -> None:
        """Flush (up to ``timeout`` seconds), then close the stream and the channel.

        Operations still unanswered then fail with `ServiceUnavailable`, and so do operations
        sent afterwards.
        """
        if self._closed or self._on_loop_thread():
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            self.flush(timeout)
        # RuntimeError/TimeoutError: the loop is gone (interpreter shutdown); nothing to close.
        with contextlib.suppress(RuntimeError, TimeoutError):
            _loop.run_sync(self._aclose(), timeout=10)

    def __repr__(self) -> str:
        return f"EngineConnection(address={self.address!r})"

    # ---------------------------------------------------------------------- internals

    def _on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread_id

    def _check_size(self, request: engine_pb2.ConnectRequest) -> None:
        # A message over the limit would fail the whole stream, and with it every operation
        # in flight, again on every resend, so it is refused here on its own.
        size = request.ByteSize()
        if size > MAX_MESSAGE_BYTES:
            kind = request.WhichOneof("operation")
            raise InvalidRequest(
                "MESSAGE_TOO_LARGE",
                f"The {kind} request is {size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit. "
                "Persist large results to result storage instead of sending them inline, and "
                "send log lines in smaller batches.",
            )

    def _call(self, request: engine_pb2.ConnectRequest) -> Any:
        if self._closed:  # also: the loop may be stopped, and nothing would ever answer
            raise self._closed_error()
        if self._on_loop_thread():
            raise RuntimeError(
                "A blocking Headwater call was made on Headwater's background loop; "
                "use the async twin (a-prefixed method) there."
            )
        self._check_size(request)
        op = _SyncOp(request)
        self._loop.call_soon_threadsafe(self._submit, op)
        return op.wait()

    async def _acall(self, request: engine_pb2.ConnectRequest) -> Any:
        if self._closed:
            raise self._closed_error()
        self._check_size(request)
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            op = _AsyncOp(request, loop, same_loop=True)
            self._submit(op)
        else:
            op = _AsyncOp(request, loop, same_loop=False)
            self._loop.call_soon_threadsafe(self._submit, op)
        return await op.future

    def _submit(self, op: _Op) -> None:
        """Register an operation and queue it on the open stream (background loop only)."""
        if self._closed:
            op.resolve(None, self._closed_error())
            return
        sequence = self._next_sequence
        self._next_sequence = sequence + 1
        op.request.sequence = sequence
        self._pending[sequence] = op
        if self._queue is not None:
            self._queue.put_nowait(op)
        elif self._demand is not None:
            self._demand.set()

    def _add_flush_waiter(self, waiter: _FlushWaiter) -> None:
        waiter.limit = self._next_sequence - 1
        if self._closed or self._is_flushed(waiter.limit):
            waiter.resolve()
        else:
            self._flush_waiters.append(waiter)

    def _is_flushed(self, limit: int) -> bool:
        # `_pending` holds sequences in increasing order (they are assigned on this loop and
        # never re-inserted), so its first key is the oldest unanswered operation.
        oldest = next(iter(self._pending), None)
        return oldest is None or oldest > limit

    def _settle_flush_waiters(self) -> None:
        still_waiting = []
        for waiter in self._flush_waiters:
            if self._is_flushed(waiter.limit):
                waiter.resolve()
            else:
                still_waiting.append(waiter)
        self._flush_waiters = still_waiting

    def _answer(self, sequence: int, response: Any, error: BaseException | None) -> None:
        op = self._pending.pop(sequence, None)
        if op is None:
            return  # already failed by the retry deadline, or a duplicate answer
        op.resolve(response, error)
        if self._flush_waiters:
            self._settle_flush_waiters()

    async def _astart(self) -> None:
        self._start()

    def _start(self) -> None:
        """Open the channel and start the stream task; on the background loop only."""
        self._demand = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(
            self.address, options=channel_options(self._keepalive_time_ms)
        )
        self._runner = asyncio.create_task(self._run(), name="headwater-engine-stream")

    async def _run(self) -> None:
        """Keep a stream open while there is work, reconnecting with backoff when it breaks."""
        assert self._channel is not None and self._demand is not None
        stub = engine_pb2_grpc.EngineServiceStub(self._channel)
        backoff = _INITIAL_BACKOFF
        outage_start: float | None = None
        warned = False
        while not self._closed:
            progressed = False
            try:
                progressed = await self._stream_once(stub)
                self._last_error = "the service ended the stream"
                retry = True
            except grpc.aio.AioRpcError as error:
                self._last_error = f"{error.code().name}: {error.details()}"
                retry = error.code() in _RECONNECT_CODES
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    self._fail_pending(
                        ServiceError(
                            "UNIMPLEMENTED",
                            "ENGINE_STREAM_UNIMPLEMENTED",
                            f"The server at {self.address} does not offer Headwater's engine "
                            f"stream ({error.details()}). Check that HEADWATER_API_URL points "
                            "at a Headwater server of a compatible version.",
                        )
                    )
                elif not retry:
                    self._fail_pending(from_rpc_error(error))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug here must not strand the waiting callers
                self._last_error = f"{type(error).__name__}: {error}"
                self._fail_pending(
                    ServiceUnavailable(
                        "CLIENT_ERROR",
                        f"The Headwater engine stream to {self.address} failed: "
                        f"{self._last_error}. Please report this as a bug.",
                    )
                )
                retry = True
            if self._closed:
                break
            if progressed:
                backoff = _INITIAL_BACKOFF
                outage_start = None
                warned = False
            now = time.monotonic()
            if outage_start is None:
                outage_start = now
            self._expire_pending(outage_start, now)
            if self._pending and not warned and now - outage_start >= _WARN_AFTER:
                # Callers are blocked: tell the person why, once per outage.
                warned = True
                print(
                    f"headwater: cannot reach the Headwater service at {self.address} "
                    f"({self._last_error}); retrying for up to {self.retry_timeout:g} s.",
                    file=sys.stderr,
                )
            if not retry or not self._pending:
                # Nothing to resend: wait for the next operation instead of spinning.
                self._demand.clear()
                await self._demand.wait()
                backoff = _INITIAL_BACKOFF
                outage_start = time.monotonic()
                warned = False
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            self.reconnects += 1

    async def _stream_once(self, stub: engine_pb2_grpc.EngineServiceStub) -> bool:
        """Run one Connect stream until it ends; True if any answer arrived on it."""
        call = stub.Connect(wait_for_ready=False)
        queue: asyncio.Queue[_Op] = asyncio.Queue()
        for op in self._pending.values():  # resend what the last stream left unanswered
            queue.put_nowait(op)
        self.resent += len(self._pending)
        self.streams_opened += 1
        self._queue = queue
        writer = asyncio.create_task(self._write_loop(call, queue))
        progressed = False
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return progressed
                progressed = True
                outcome = response.WhichOneof("outcome")
                if outcome == "error":
                    self._answer(response.sequence, None, from_operation_error(response.error))
                else:
                    self._answer(response.sequence, getattr(response, outcome), None)
        finally:
            self._queue = None
            writer.cancel()
            call.cancel()

    @staticmethod
    async def _write_loop(call: Any, queue: asyncio.Queue[_Op]) -> None:
        try:
            while True:
                op = await queue.get()
                await call.write(op.request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the reader sees the stream's status and decides what to do

    def _expire_pending(self, outage_start: float, now: float) -> None:
        expired = [
            sequence
            for sequence, op in self._pending.items()
            if now - max(op.submitted, outage_start) >= self.retry_timeout
        ]
        if not expired:
            return
        error = ServiceUnavailable(
            "SERVICE_UNREACHABLE",
            f"Could not reach the Headwater service at {self.address} for "
            f"{self.retry_timeout:g} s (last error: {self._last_error}). Start it with "
            "`headwater server start`, check HEADWATER_API_URL, or give a restarting server "
            "more time with HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS.",
        )
        for sequence in expired:
            self._answer(sequence, None, copy.copy(error))

    def _fail_pending(self, error: BaseException) -> None:
        # One copy per caller: threads raising one shared instance would tangle its traceback.
        for sequence in list(self._pending):
            self._answer(sequence, None, copy.copy(error))

    def _closed_error(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            "CONNECTION_CLOSED",
            f"The connection to the Headwater service at {self.address} was closed "
            "(the process is shutting down) before the operation was answered.",
        )

    async def _aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_pending(self._closed_error())
        for waiter in self._flush_waiters:
            waiter.resolve()
        self._flush_waiters = []
        if self._channel is not None:
            await self._channel.close()


def _with_request_id(request: engine_pb2.ConnectRequest) -> engine_pb2.ConnectRequest:
    """Give a create operation a ``request_id`` so a resend after reconnecting is harmless.

    The request is the stream's own copy, so the caller's message is left as it was.
    """
    inner = getattr(request, request.WhichOneof("operation"))
    if not inner.request_id:
        inner.request_id = str(uuid.uuid4())
    return request


def _with_transition_id(request: engine_pb2.ConnectRequest) -> engine_pb2.ConnectRequest:
    """Give a state proposal a ``transition_id`` so a resend is answered, not applied, twice."""
    inner = getattr(request, request.WhichOneof("operation"))
    if not inner.transition_id:
        inner.transition_id = str(uuid.uuid4())
    return request


def _loop_thread_id(loop: asyncio.AbstractEventLoop) -> int:
    if _loop.in_background_loop():
        return threading.get_ident()
    box: list[int] = []
    done = threading.Event()

    def _record() -> None:
        box.append(threading.get_ident())
        done.set()

    loop.call_soon_threadsafe(_record)
    done.wait()
    return box[0]


# ------------------------------------------------------------------ process-wide singleton

_connection: EngineConnection | None = None
_connection_lock = threading.Lock()


def get_connection() -> EngineConnection:
    """The process's engine connection, opened on first use.

    With ``HEADWATER_API_URL`` unset it first starts the embedded server (in-process, on the
    local database) and connects to that.
    """
    global _connection
    connection = _connection
    if connection is not None:
        return connection
    with _connection_lock:
        if _connection is None:
            from headwater._settings import get_settings

            address = get_settings().api_url
            if address is None:
                from headwater._embedded import ensure_embedded_server

                address = ensure_embedded_server()
            _connection = EngineConnection(address)
            # Registered after the embedded server's own hook, so it runs first: the stream
            # is flushed while the server can still answer.
            _loop.register_exit_hook(_close_at_exit)
        return _connection


def close_connection(timeout: float | None = 5.0) -> None:
    """Flush and close the process's connection, if one is open (atexit, and tests)."""
    global _connection
    with _connection_lock:
        connection, _connection = _connection, None
    if connection is not None:
        connection.close(timeout)


def _close_at_exit() -> None:
    """Ship buffered run logs, flush, and close; the closed connection stays the singleton.

    Keeping it means a late caller (another exit hook) gets clear "connection closed" errors
    and an instant `flush`, instead of a new connection (and a new embedded server) at exit.
    """
    logging_module = sys.modules.get("headwater._logging")
    flush_logs = getattr(logging_module, "flush_logs", None)
    if flush_logs is not None:
        with contextlib.suppress(Exception):
            flush_logs(wait=False)
    connection = _connection
    if connection is not None:
        connection.close()


def _forget_after_fork() -> None:
    """A forked child cannot use its parent's stream; it opens its own on first use."""
    global _connection, _connection_lock
    _connection = None
    _connection_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

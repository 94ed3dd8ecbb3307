"""Keeping the engine stream open: reconnect with backoff, resend, and give up in time.

A broken stream (the server restarts, a proxy drops it) is not a failed operation: the runner
here opens a new stream, with backoff, and sends every unanswered operation again (see
`headwater._transport.stream.protocol` for why that is safe). Operations still unanswered after
``retry_timeout`` seconds of outage fail with `ServiceUnavailable`, and after a few seconds the
person is told on stderr why their program is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from headwater._transport.channel import channel_options
from headwater._transport.status import from_operation_error, from_rpc_error
from headwater._transport.stream.identity import engine_metadata
from headwater._transport.stream.protocol import OperationTable, Outbox
from headwater.exceptions import ServiceError, ServiceUnavailable, clause
from headwater.v1 import engine_pb2, engine_pb2_grpc

__all__ = ["EngineStream"]

_Request = engine_pb2.ConnectRequest

_INITIAL_BACKOFF = 0.1
_MAX_BACKOFF = 2.0
# After this many seconds of outage with callers waiting, say so on stderr (once).
_WARN_AFTER = 5.0
#: How long operations wait for a service this stream has never reached.
FIRST_CONTACT_SECONDS = 3.0
#: How often a stream that has not reached its service yet checks for operations to fail.
_FIRST_CONTACT_TICK = 0.25

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


#: Opens a ``Connect`` stream without the wire, given the stream's metadata: how an engine
#: reaches the embedded server in its own process (`headwater._transport.embedded`).
LocalConnect = Callable[[tuple[tuple[str, str], ...]], Any]


class EngineStream:
    """One grpc.aio channel and the task that keeps a ``Connect`` stream open on it.

    Lives on the background loop: `start`, `stop` and `close_channel` are called there. With
    ``local``, the stream itself is opened by it (the server runs in this process, on this
    loop); the channel then serves the other calls only (watches).
    """

    def __init__(
        self,
        address: str,
        keepalive_time_ms: int,
        operations: OperationTable,
        retry_timeout: float,
        local: LocalConnect | None = None,
    ) -> None:
        self.address = address
        self._local = local
        self.retry_timeout = retry_timeout
        self._keepalive_time_ms = keepalive_time_ms
        self._ops = operations
        self._channel: grpc.aio.Channel | None = None
        self._runner: asyncio.Task[None] | None = None
        self._first_contact: asyncio.Task[None] | None = None
        self._last_error = "no answer yet"
        #: Whether the service ever answered on this stream's channel.
        self.reached = False
        #: How many streams were opened (1 + reconnects) and operations sent again on a new
        #: stream; for tests and diagnostics.
        self.streams_opened = 0
        self.resent = 0
        self.reconnects = 0
        #: How many messages were written on the streams (a batch counts once), and read.
        self.messages_sent = 0
        self.messages_received = 0

    def start(self) -> None:
        """Open the channel and start the stream task."""
        self._ops.demand = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(
            self.address, options=channel_options(self._keepalive_time_ms)
        )
        self._runner = asyncio.create_task(self._run(), name="headwater-engine-stream")
        self._first_contact = asyncio.create_task(
            self._fail_unreached(), name="headwater-first-contact"
        )

    async def stop(self) -> None:
        """Stop the stream task (the operation table is marked closed already)."""
        for task in (self._first_contact, self._runner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _fail_unreached(self) -> None:
        """Until the service first answers, fail operations that waited too long for it.

        The service counts as reached once the channel is connected (READY), even before its
        first answer, so a slow first answer is waited for like any other. A separate task,
        because a connection attempt to an address that drops packets can hang far longer than
        the stream's own retries would notice.
        """
        while not self.reached and not self._ops.closed:
            await asyncio.sleep(_FIRST_CONTACT_TICK)
            channel = self._channel
            if channel is not None and channel.get_state() == grpc.ChannelConnectivity.READY:
                self.reached = True
            elif not self.reached and self._ops.pending:
                self._expire_pending(None, time.monotonic())

    @property
    def in_process(self) -> bool:
        """Whether the stream is opened in-process (``local``) rather than over the channel."""
        return self._local is not None

    @property
    def channel(self) -> grpc.aio.Channel | None:
        """The channel, for the few unary and server-streaming calls the engine also makes
        (watching a run for cancellation), so they need no second connection."""
        return self._channel

    async def close_channel(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def _run(self) -> None:
        """Keep a stream open while there is work, reconnecting with backoff when it breaks."""
        ops = self._ops
        assert self._channel is not None and ops.demand is not None
        stub = engine_pb2_grpc.EngineServiceStub(self._channel)
        backoff = _INITIAL_BACKOFF
        outage_start: float | None = None
        warned = False
        while not ops.closed:
            progressed = False
            try:
                progressed = await self._stream_once(stub)
                self._last_error = "the service ended the stream"
                retry = True
            except grpc.aio.AioRpcError as error:
                self._last_error = f"{error.code().name}: {error.details()}"
                retry = error.code() in _RECONNECT_CODES
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    ops.fail_all(
                        ServiceError(
                            "UNIMPLEMENTED",
                            "ENGINE_STREAM_UNIMPLEMENTED",
                            f"The server at {self.address} does not offer Headwater's engine "
                            f"stream ({error.details()}). Check that HEADWATER_API_URL points "
                            "at a Headwater server of a compatible version.",
                        )
                    )
                elif not retry:
                    ops.fail_all(from_rpc_error(error))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug here must not strand the waiting callers
                self._last_error = f"{type(error).__name__}: {error}"
                ops.fail_all(
                    ServiceUnavailable(
                        "CLIENT_ERROR",
                        f"The Headwater engine stream to {self.address} failed: "
                        f"{clause(str(self._last_error))}. Please report this as a bug.",
                    )
                )
                retry = True
            if ops.closed:
                break
            if progressed:
                self.reached = True
                backoff = _INITIAL_BACKOFF
                outage_start = None
                warned = False
            now = time.monotonic()
            if outage_start is None:
                outage_start = now
            self._expire_pending(outage_start, now)
            if ops.pending and not warned and now - outage_start >= _WARN_AFTER:
                # Callers are blocked: tell the person why, once per outage.
                warned = True
                print(
                    f"headwater: cannot reach the Headwater service at {self.address} "
                    f"({self._last_error}); retrying for up to {self.retry_timeout:g} s.",
                    file=sys.stderr,
                )
            if not retry or not ops.pending:
                # Nothing to resend: wait for the next operation instead of spinning.
                ops.demand.clear()
                await ops.demand.wait()
                backoff = _INITIAL_BACKOFF
                outage_start = time.monotonic()
                warned = False
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            self.reconnects += 1

    async def _stream_once(self, stub: engine_pb2_grpc.EngineServiceStub) -> bool:
        """Run one Connect stream until it ends; True if any answer arrived on it."""
        ops = self._ops
        if self._local is not None:
            call = self._local(engine_metadata())
        else:
            call = stub.Connect(wait_for_ready=False, metadata=engine_metadata())
        queue = Outbox()
        for op in ops.pending.values():  # resend what the last stream left unanswered
            queue.put_nowait(op)
        self.resent += len(ops.pending)
        self.streams_opened += 1
        ops.queue = queue
        batching = _Batching()
        writer = asyncio.create_task(_write_loop(call, queue, batching, self))
        progressed = False
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return progressed
                self.messages_received += 1
                if not progressed:
                    # The server's initial metadata has arrived with its first answer at the
                    # latest: from now on operations ready together may share a message.
                    batching.enabled = await _server_batches(call)
                progressed = self.reached = True
                outcome = response.WhichOneof("outcome")
                if outcome == "batch":
                    for inner in response.batch.responses:
                        _answer(ops, inner, inner.WhichOneof("outcome"))
                else:
                    _answer(ops, response, outcome)
        finally:
            ops.queue = None
            writer.cancel()
            call.cancel()

    def _expire_pending(self, outage_start: float | None, now: float) -> None:
        """Fail the operations that waited too long into this outage.

        That is ``retry_timeout`` seconds for a service this stream has reached, and
        `FIRST_CONTACT_SECONDS` (at most) for one it never reached.
        """
        if self.reached:
            limit = self.retry_timeout
            error = self._unreachable_error()
        else:
            limit = min(self.retry_timeout, FIRST_CONTACT_SECONDS)
            error = self._never_reached_error(limit)
        start = outage_start if outage_start is not None else 0.0
        expired = [
            sequence
            for sequence, op in self._ops.pending.items()
            if now - max(op.submitted, start) >= limit
        ]
        for sequence in expired:
            self._ops.answer(sequence, None, copy.copy(error))

    def _unreachable_error(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            "SERVICE_UNREACHABLE",
            f"Could not reach the Headwater service at {self.address} for "
            f"{self.retry_timeout:g} s (last error: {self._last_error}). Start it with "
            "`headwater server start`, check HEADWATER_API_URL, or give a restarting server "
            "more time with HEADWATER_CLIENT_RETRY_TIMEOUT_SECONDS.",
        )

    def _never_reached_error(self, waited: float) -> ServiceUnavailable:
        return ServiceUnavailable(
            "SERVICE_UNREACHABLE",
            f"No Headwater service answered at {self.address} within {waited:g} s (last "
            f"error: {self._last_error}). Check HEADWATER_API_URL (it names this address): "
            "start a server there with `headwater server start`, point the variable at a "
            "running one, or unset it to use the embedded service.",
        )


def _answer(ops: OperationTable, response: Any, outcome: str | None) -> None:
    if outcome == "error":
        ops.answer(response.sequence, None, from_operation_error(response.error))
    else:
        ops.answer(response.sequence, getattr(response, outcome) if outcome else None, None)


class _Batching:
    """Whether this stream's server takes ``batch`` messages (learned from its metadata)."""

    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = False


async def _server_batches(call: Any) -> bool:
    metadata = await call.initial_metadata()
    return any(key == _BATCH_KEY and value == "1" for key, value in metadata or ())


_BATCH_KEY = "headwater-engine-batch"
#: The most operations one message carries (a batch stays far below gRPC's 4 MiB limit as long
#: as each operation is small; `check_size` caps each one, `_MAX_BATCH_BYTES` the batch), so a
#: thousand submitted tasks' starts take four messages.
MAX_BATCH = 256
_MAX_BATCH_BYTES = 1 << 20


async def _write_loop(call: Any, queue: Outbox, batching: _Batching, stream: EngineStream) -> None:
    """Put queued operations on the wire until the stream ends.

    Operations queued together (a task's end sent without waiting, then the next task's
    start) go in one ``batch`` message once the server said it takes them: one message
    instead of several, on both sides of the wire.
    """
    try:
        while True:
            op = await queue.get()
            stream.messages_sent += 1
            if not batching.enabled or queue.empty():
                await call.write(op.request)
                continue
            batch = _Request()
            requests = batch.batch.requests
            requests.append(op.request)
            size = op.request.ByteSize()
            while not queue.empty() and len(requests) < MAX_BATCH and size < _MAX_BATCH_BYTES:
                request = queue.get_nowait().request
                requests.append(request)
                size += request.ByteSize()
            await call.write(batch)
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return  # the reader sees the stream's status and decides what to do

"""``EngineService.Connect`` for an engine in the server's own process, without the wire.

The SDK's embedded server runs on the very event loop of the engine that reports to it. Over a
socket, every message between the two crossed gRPC's core four times (the client's write, the
server's read, the server's write, the client's read), each with its own thread hand-off and
wake-up of the loop: measured here (tasks.py seq, a flow calling a trivial task), that was about
a quarter of a sequential task's cost, for bytes that never left the process. A `LocalEngineCall`
hands the request messages to the same `EngineSession` the gRPC method runs
(`headwater_server.servicers.engine.run_session`), and its answers back, on that loop.

What stays the same: every operation runs the same application code, in the same order, and
is answered with the same messages (copied out of the server's results, as serialising them
would); the stream's metadata names the engine; a shutdown answers what was received and then
fails the stream with UNAVAILABLE, which the client meets as it would over gRPC (it reconnects
and resends what got no answer). Everything else the process does (watches, unary calls, other
processes' engines such as process-pool task runners) still goes over the server's socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Coroutine, Iterable
from typing import Any

import grpc
import grpc.aio
from headwater.v1 import engine_pb2

from headwater_server import errors
from headwater_server.application.backend import Backend
from headwater_server.servicers.engine import (
    BATCH_METADATA,
    EngineSession,
    end_session,
    open_session,
    run_session,
)

__all__ = ["LocalEngineCall"]


class LocalEngineCall:
    """One in-process Connect stream: the part of ``grpc.aio.StreamStreamCall`` the SDK's
    engine stream uses (`write`, `done_writing`, `read`, `initial_metadata`, `cancel`).

    Create it on the server's event loop. A written message goes straight to the session
    (no queue, no reader task between them); `read` runs the session's answer loop. Failures
    surface as ``grpc.aio.AioRpcError`` with the status the gRPC method would end with.
    """

    def __init__(self, backend: Backend, metadata: Iterable[tuple[str, str]]) -> None:
        self._backend = backend
        self._opening = asyncio.get_running_loop().create_task(
            open_session(backend, tuple(metadata))
        )
        self._session: EngineSession | None = None
        self._answers: AsyncGenerator[engine_pb2.ConnectResponse, None] | None = None
        self._finished: grpc.aio.AioRpcError | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, request: engine_pb2.ConnectRequest) -> None:
        """Hand one request message to the session (waits while it has many in flight)."""
        if self._finished is not None:
            raise self._finished
        session = self._session or await self._open()
        await session.accept(request)

    async def done_writing(self) -> None:
        """The client sends nothing more: the session answers what it has, then ends."""
        session = self._session or await self._open()
        self._background(session.finish())

    async def read(self) -> Any:
        """The next answer message, or ``grpc.aio.EOF`` once the stream ended cleanly.

        Raises:
            grpc.aio.AioRpcError: The stream failed (the server is shutting down: UNAVAILABLE;
                it was cancelled: CANCELLED; the metadata was refused: INVALID_ARGUMENT).
        """
        if self._finished is not None:
            raise self._finished
        answers = self._answers
        if answers is None:
            session = self._session or await self._open()
            answers = self._answers = run_session(self._backend, session, None)
        try:
            return await answers.__anext__()
        except StopAsyncIteration:
            return grpc.aio.EOF
        except errors.ServiceError as exc:
            self._finished = _rpc_error(exc.code, exc.message)
            raise self._finished from None

    async def initial_metadata(self) -> grpc.aio.Metadata:
        """What the gRPC method sends first: the server takes and sends batches."""
        return grpc.aio.Metadata(*BATCH_METADATA)

    def cancel(self) -> bool:
        """End the stream from the client's side; operations in flight are abandoned, as when a
        gRPC client cancels (the client resends those that got no answer)."""
        if self._finished is not None:
            return False
        self._finished = _rpc_error(grpc.StatusCode.CANCELLED, "Locally cancelled by the client.")
        if self._answers is not None:
            self._background(self._answers.aclose())  # its end ends the session
        elif self._session is not None:
            end_session(self._backend, self._session)
        else:
            self._opening.add_done_callback(self._end_opened)
        return True

    async def _open(self) -> EngineSession:
        try:
            self._session = await self._opening
        except errors.ServiceError as exc:
            self._finished = _rpc_error(exc.code, exc.message)
            raise self._finished from None
        return self._session

    def _end_opened(self, opening: asyncio.Task[EngineSession]) -> None:
        """A session that opened after its stream was cancelled ends at once."""
        if not opening.cancelled() and opening.exception() is None:
            end_session(self._backend, opening.result())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)

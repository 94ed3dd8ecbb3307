"""What every servicer shares: the backend handle and the one translation of errors to statuses.

Handlers are written as plain ``async def op(backend, request) -> response`` functions so that the
unary servicers and the engine stream run exactly the same code. :func:`unary` and
:func:`server_streaming` turn such a function into a gRPC method and are the only places where a
``ServiceError`` becomes a rich status and an unexpected exception becomes INTERNAL: the server
logs the traceback and keeps serving, the caller gets a message instead of a crash.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
import grpc.aio
from grpc_status import rpc_status

from headwater_server import errors

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from headwater_server.events import EventHub
    from headwater_server.storage.database import Database

logger = logging.getLogger("headwater_server.rpc")

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

# The request fields that name the run (or other resource) a call is about, most specific
# first: an unexpected error is logged with it so an operator can find the run in question.
_ID_FIELDS = ("task_run_id", "flow_run_id", "flow_id")


@dataclass
class Backend:
    """Everything a handler needs: the database, the event hub and the shutdown flag.

    One instance per running server; servicers hold it instead of globals so two servers (a test
    server and an embedded one) can live in one process.
    """

    db: Database
    hub: EventHub
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Open engine streams, so a shutdown can end each one cleanly with UNAVAILABLE.
    engine_sessions: set[Any] = field(default_factory=set)


# Seconds left before the caller's deadline for the unary call being handled (None: no
# deadline). A long poll reads it to answer before the deadline instead of failing with
# DEADLINE_EXCEEDED. Each RPC runs in its own task, so the value never leaks between calls.
time_remaining: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "time_remaining", default=None
)

Operation = Callable[[Backend, RequestT], Awaitable[ResponseT]]
StreamOperation = Callable[[Backend, RequestT, grpc.aio.ServicerContext], AsyncIterator[ResponseT]]


def resource_id_of(request: Message | None) -> str:
    """Return the id of the run or flow a request is about, or "" when it names none."""
    if request is None:
        return ""
    for name in _ID_FIELDS:
        value = getattr(request, name, "")
        if value and isinstance(value, str):
            return value
    logs = getattr(request, "logs", None)
    if logs:
        return str(getattr(logs[0], "flow_run_id", ""))
    return ""


def to_service_error(
    exc: BaseException, method: str, request: Message | None
) -> errors.ServiceError:
    """Return ``exc`` as a ServiceError; anything unexpected is logged and becomes INTERNAL."""
    if isinstance(exc, errors.ServiceError):
        return exc
    subject = resource_id_of(request)
    about = f" for '{subject}'" if subject else ""
    logger.error("Unexpected error in %s%s", method, about, exc_info=exc)
    return errors.internal(
        f"{method} failed unexpectedly{about}: {type(exc).__name__}: {exc}. The server logged "
        "the traceback; retry once, and report it if it happens again."
    )


async def abort(context: grpc.aio.ServicerContext, error: errors.ServiceError) -> NoReturn:
    """End the call with ``error`` as a rich status (ErrorInfo, BadRequest, ResourceInfo)."""
    await context.abort_with_status(rpc_status.to_status(errors.to_rpc_status(error)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises


def unary(op: Operation[Any, Any], method: str) -> Callable[..., Awaitable[Any]]:
    """Turn ``op`` into a unary servicer method with the shared error translation.

    Args:
        op: The plain handler, also used by the engine stream.
        method: The full RPC name for logs, e.g. "FlowRunService.GetFlowRun".
    """

    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            time_remaining.set(context.time_remaining())
            return await op(self.backend, request)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            error = to_service_error(exc, method, request)
        await abort(context, error)

    handler.__name__ = method.rsplit(".", 1)[-1]
    handler.__qualname__ = method
    handler.__doc__ = op.__doc__
    return handler


def server_streaming(
    op: StreamOperation[Any, Any], method: str
) -> Callable[..., AsyncIterator[Any]]:
    """Turn the async generator ``op`` into a server-streaming method with error translation."""

    async def handler(
        self: Any, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            async for item in op(self.backend, request, context):
                yield item
            return
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            error = to_service_error(exc, method, request)
        await abort(context, error)

    handler.__name__ = method.rsplit(".", 1)[-1]
    handler.__qualname__ = method
    handler.__doc__ = op.__doc__
    return handler

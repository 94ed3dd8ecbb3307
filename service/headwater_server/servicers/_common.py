"""What every servicer shares: the one translation of application errors to gRPC statuses.

The operations themselves are the application layer's ``async def op(backend, request) ->
response`` functions (:mod:`headwater_server.application`), which the unary servicers and the
engine stream both call. :func:`unary` and :func:`server_streaming` turn such a function into a
gRPC method and are the only places where a ``ServiceError`` becomes a rich status and an
unexpected exception becomes INTERNAL: the server logs the traceback and keeps serving, the
caller gets a message instead of a crash.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
import grpc.aio
from grpc_status import rpc_status

from headwater_server import errors
from headwater_server.application.backend import Backend, Operation, time_remaining
from headwater_server.telemetry import remember_caller

if TYPE_CHECKING:
    from google.protobuf.message import Message

logger = logging.getLogger("headwater_server.rpc")

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

# The request fields that name the run (or other resource) a call is about, most specific
# first: an unexpected error is logged with it so an operator can find the run in question.
_ID_FIELDS = ("task_run_id", "flow_run_id", "flow_id")

__all__ = [
    "Backend",
    "Operation",
    "StreamOperation",
    "abort",
    "server_streaming",
    "to_service_error",
    "unary",
]

StreamOperation = Callable[[Backend, RequestT], AsyncIterator[ResponseT]]


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
    """End the call with ``error`` as a rich status (ErrorInfo, BadRequest, ResourceInfo).

    The error's traceback is dropped first. It holds the failed call's frames, and with them the
    request (megabytes, for a rejected large request), in a reference cycle with the handler's
    frame that only a full garbage collection frees: under a stream of rejected 3 MiB requests
    the server grew by about 50 MiB per thousand. Unexpected errors were logged with their
    traceback before they got here.
    """
    status = rpc_status.to_status(errors.to_rpc_status(error))
    error.__traceback__ = None
    error.__context__ = None
    await context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises


def unary(op: Operation[Any, Any], method: str) -> Callable[..., Awaitable[Any]]:
    """Turn ``op`` into a unary servicer method with the shared error translation.

    Args:
        op: The application operation, also used by the engine stream.
        method: The full RPC name for logs, e.g. "FlowRunService.GetFlowRun".
    """

    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            time_remaining.set(context.time_remaining())
            remember_caller(context)
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
            async for item in op(self.backend, request):
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

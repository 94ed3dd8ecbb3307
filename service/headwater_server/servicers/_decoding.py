"""Undecodable request bytes answer INVALID_ARGUMENT, not grpcio's default UNKNOWN.

grpcio parses a request before any handler runs, and when parsing fails it ends the call with
UNKNOWN ("Unexpected DecodeError"), which reads like a server bug and gives the caller no
ErrorInfo. On a client stream it is worse: the failure ends the request iterator, the engine
stream took that for the client closing its side, ended OK, and silently dropped every
operation sent after the bad one.

:class:`DecodeErrorInterceptor` wraps each method's request deserializer so that a failure
becomes an :class:`UndecodableRequest` value instead of an exception. Unary-request methods
answer it with INVALID_ARGUMENT (a rich status, like every other bad request). Client-streaming
methods of headwater.v1 receive it in their request stream and answer it themselves (the engine
stream sends an OperationError and keeps going); other services' streams (reflection) keep
grpcio's behaviour, since their handlers do not know the value.

Handlers are wrapped once per method and cached, so calls pay one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from headwater_server import errors
from headwater_server.servicers._common import abort

_OWN_SERVICES_PREFIX = "/headwater.v1."


@dataclass(frozen=True)
class UndecodableRequest:
    """Stands in for a request message whose bytes could not be parsed."""

    method: str
    problem: str

    def error(self) -> errors.ServiceError:
        """The INVALID_ARGUMENT the caller gets for it."""
        return errors.undecodable_request(self.method, self.problem)


def _deserializer(
    method: str, parse: Callable[[bytes], Any] | None
) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception as exc:
            return UndecodableRequest(method, f"{type(exc).__name__}: {exc}")

    return deserialize


def _unary_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, UndecodableRequest):
            await abort(context, request.error())
        return await behavior(request, context)

    return handle


def _unary_stream(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, UndecodableRequest):
            await abort(context, request.error())
        async for item in behavior(request, context):
            yield item

    return handle


def tolerant_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with its request deserializer (and, for unary requests, behaviour) wrapped."""
    if handler.request_streaming:
        if not method.startswith(_OWN_SERVICES_PREFIX):
            return handler
        return handler._replace(
            request_deserializer=_deserializer(method, handler.request_deserializer)
        )
    replaced: dict[str, Any] = {
        "request_deserializer": _deserializer(method, handler.request_deserializer)
    }
    if handler.unary_unary is not None:
        replaced["unary_unary"] = _unary_unary(handler.unary_unary)
    elif handler.unary_stream is not None:
        replaced["unary_stream"] = _unary_stream(handler.unary_stream)
    return handler._replace(**replaced)


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Answer undecodable requests with INVALID_ARGUMENT (see the module docstring)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = tolerant_handler(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped

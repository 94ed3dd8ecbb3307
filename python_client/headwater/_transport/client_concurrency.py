"""The public clients' concurrency limit calls: requests built here, answers converted.

The twin of `client_ops` for ConcurrencyLimitService: each function returns the `Unary` or
`Listing` the sync and async runners send, so each call is written once for both clients.
"""

from __future__ import annotations

from headwater._concurrency_records import ConcurrencyLimit
from headwater._transport import client_convert as convert
from headwater._transport.client_ops import Listing, Unary, by_token, page_size
from headwater.v1 import concurrency_limits_pb2 as C

__all__ = [
    "create_concurrency_limit",
    "delete_concurrency_limit",
    "get_concurrency_limit",
    "list_concurrency_limits",
    "reset_concurrency_limit",
]

_SERVICE = "concurrency_limits"


def concurrency_limit_from_proto(message: C.ConcurrencyLimit) -> ConcurrencyLimit:
    """The SDK record of a concurrency limit message."""
    return ConcurrencyLimit(
        id=message.id,
        tag=message.tag,
        concurrency_limit=message.concurrency_limit,
        active_slots=tuple(message.active_slots),
        created=convert.time_of(message, "create_time"),
        updated=convert.time_of(message, "update_time"),
        raw=message,
    )


def create_concurrency_limit(
    tag: str, concurrency_limit: int, request_id: str
) -> Unary[ConcurrencyLimit]:
    request = C.CreateConcurrencyLimitRequest(
        tag=tag, concurrency_limit=concurrency_limit, request_id=request_id
    )
    return Unary(
        _SERVICE,
        "CreateConcurrencyLimit",
        request,
        lambda response: concurrency_limit_from_proto(response.concurrency_limit),
    )


def get_concurrency_limit(tag: str) -> Unary[ConcurrencyLimit]:
    return Unary(
        _SERVICE,
        "GetConcurrencyLimit",
        C.GetConcurrencyLimitRequest(tag=tag),
        lambda response: concurrency_limit_from_proto(response.concurrency_limit),
    )


def list_concurrency_limits(limit: int) -> Listing[ConcurrencyLimit]:
    return Listing(
        _SERVICE,
        "ListConcurrencyLimits",
        C.ListConcurrencyLimitsRequest(page_size=page_size(limit)),
        lambda response: response.concurrency_limits,
        concurrency_limit_from_proto,
        by_token,
        limit,
    )


def delete_concurrency_limit(tag: str, request_id: str) -> Unary[None]:
    request = C.DeleteConcurrencyLimitRequest(tag=tag, request_id=request_id)
    return Unary(_SERVICE, "DeleteConcurrencyLimit", request, lambda response: None)


def reset_concurrency_limit(tag: str, request_id: str) -> Unary[ConcurrencyLimit]:
    return Unary(
        _SERVICE,
        "ResetConcurrencyLimit",
        C.ResetConcurrencyLimitRequest(tag=tag, request_id=request_id),
        lambda response: concurrency_limit_from_proto(response.concurrency_limit),
    )

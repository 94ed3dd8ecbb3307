"""Tag concurrency limits for task runs: set, read, list, delete and reset them."""

from __future__ import annotations

from headwater.v1 import concurrency_limits_pb2

from headwater_server import errors
from headwater_server.application import checks
from headwater_server.application.backend import Backend


def _tag(tag: str) -> None:
    if not tag:
        raise errors.invalid_argument(
            "tag", "is required: name the tag whose task runs the limit applies to."
        )
    checks.name("tag", tag)


async def create_concurrency_limit(
    backend: Backend, request: concurrency_limits_pb2.CreateConcurrencyLimitRequest
) -> concurrency_limits_pb2.CreateConcurrencyLimitResponse:
    """Set a tag's limit: created, or changed when the tag has one."""
    _tag(request.tag)
    if request.concurrency_limit < 0:
        raise errors.invalid_argument(
            "concurrency_limit",
            f"is {request.concurrency_limit}; it must be 0 or more (the most task runs with the "
            "tag that may run at once; 0 lets none start).",
        )
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.create_concurrency_limit, request)


async def get_concurrency_limit(
    backend: Backend, request: concurrency_limits_pb2.GetConcurrencyLimitRequest
) -> concurrency_limits_pb2.GetConcurrencyLimitResponse:
    """Return one tag's limit with the task runs holding its slots."""
    _tag(request.tag)
    return await backend.db.run(backend.db.repository.get_concurrency_limit, request)


async def list_concurrency_limits(
    backend: Backend, request: concurrency_limits_pb2.ListConcurrencyLimitsRequest
) -> concurrency_limits_pb2.ListConcurrencyLimitsResponse:
    """Page through the limits, oldest first."""
    checks.page_size("page_size", request.page_size)
    return await backend.db.run(backend.db.repository.list_concurrency_limits, request)


async def delete_concurrency_limit(
    backend: Backend, request: concurrency_limits_pb2.DeleteConcurrencyLimitRequest
) -> concurrency_limits_pb2.DeleteConcurrencyLimitResponse:
    """Delete a tag's limit and free its slots."""
    _tag(request.tag)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.delete_concurrency_limit, request)


async def reset_concurrency_limit(
    backend: Backend, request: concurrency_limits_pb2.ResetConcurrencyLimitRequest
) -> concurrency_limits_pb2.ResetConcurrencyLimitResponse:
    """Free every slot of a tag's limit."""
    _tag(request.tag)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.reset_concurrency_limit, request)

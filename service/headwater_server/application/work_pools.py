"""Work pools and their queues: create, read, list, change and delete them."""

from __future__ import annotations

from headwater.v1 import work_pools_pb2

from headwater_server.application import checks
from headwater_server.application.backend import Backend

# The fields UpdateWorkPool and UpdateWorkQueue may change.
POOL_UPDATABLE = ("description", "paused", "concurrency_limit", "base_job_template_json")
QUEUE_UPDATABLE = ("description", "paused", "concurrency_limit", "priority")


async def create_work_pool(
    backend: Backend, request: work_pools_pb2.CreateWorkPoolRequest
) -> work_pools_pb2.CreateWorkPoolResponse:
    """Create a pool with its "default" queue."""
    checks.flow_name("work_pool.name", request.work_pool.name)
    checks.work_pool_fields("work_pool", request.work_pool, None)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.create_work_pool, request)


async def get_work_pool(
    backend: Backend, request: work_pools_pb2.GetWorkPoolRequest
) -> work_pools_pb2.GetWorkPoolResponse:
    """Return one pool by name."""
    checks.required_text("name", request.name)
    checks.name("name", request.name)
    return await backend.db.run(backend.db.repository.get_work_pool, request)


async def list_work_pools(
    backend: Backend, request: work_pools_pb2.ListWorkPoolsRequest
) -> work_pools_pb2.ListWorkPoolsResponse:
    """Page through pools, oldest first."""
    checks.page_size("page_size", request.page_size)
    return await backend.db.run(backend.db.repository.list_work_pools, request)


async def update_work_pool(
    backend: Backend, request: work_pools_pb2.UpdateWorkPoolRequest
) -> work_pools_pb2.UpdateWorkPoolResponse:
    """Change the pool fields listed in the update mask."""
    checks.required_text("name", request.name)
    checks.name("name", request.name)
    paths = checks.update_mask("update_mask", request.update_mask, POOL_UPDATABLE)
    checks.work_pool_fields("work_pool", request.work_pool, paths)
    return await backend.db.run(backend.db.repository.update_work_pool, request)


async def delete_work_pool(
    backend: Backend, request: work_pools_pb2.DeleteWorkPoolRequest
) -> work_pools_pb2.DeleteWorkPoolResponse:
    """Delete a pool and its queues, unless deployments use it."""
    checks.required_text("name", request.name)
    checks.name("name", request.name)
    return await backend.db.run(backend.db.repository.delete_work_pool, request)


def _queue_reference(
    request: work_pools_pb2.DeleteWorkQueueRequest | work_pools_pb2.UpdateWorkQueueRequest,
) -> None:
    for field in ("work_pool_name", "name"):
        checks.required_text(field, getattr(request, field))
        checks.name(field, getattr(request, field))


async def create_work_queue(
    backend: Backend, request: work_pools_pb2.CreateWorkQueueRequest
) -> work_pools_pb2.CreateWorkQueueResponse:
    """Add a queue to a pool."""
    checks.required_text("work_pool_name", request.work_pool_name)
    checks.name("work_pool_name", request.work_pool_name)
    checks.flow_name("work_queue.name", request.work_queue.name)
    checks.work_queue_fields("work_queue", request.work_queue, None)
    checks.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.create_work_queue, request)


async def list_work_queues(
    backend: Backend, request: work_pools_pb2.ListWorkQueuesRequest
) -> work_pools_pb2.ListWorkQueuesResponse:
    """Page through a pool's queues, highest priority first."""
    checks.page_size("page_size", request.page_size)
    checks.required_text("work_pool_name", request.work_pool_name)
    checks.name("work_pool_name", request.work_pool_name)
    return await backend.db.run(backend.db.repository.list_work_queues, request)


async def update_work_queue(
    backend: Backend, request: work_pools_pb2.UpdateWorkQueueRequest
) -> work_pools_pb2.UpdateWorkQueueResponse:
    """Change the queue fields listed in the update mask."""
    _queue_reference(request)
    paths = checks.update_mask("update_mask", request.update_mask, QUEUE_UPDATABLE)
    checks.work_queue_fields("work_queue", request.work_queue, paths)
    return await backend.db.run(backend.db.repository.update_work_queue, request)


async def delete_work_queue(
    backend: Backend, request: work_pools_pb2.DeleteWorkQueueRequest
) -> work_pools_pb2.DeleteWorkQueueResponse:
    """Delete a queue, unless it is its pool's default or deployments use it."""
    _queue_reference(request)
    return await backend.db.run(backend.db.repository.delete_work_queue, request)

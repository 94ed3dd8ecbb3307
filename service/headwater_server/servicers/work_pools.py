"""WorkPoolService: the gRPC face of :mod:`headwater_server.application.work_pools`."""

from __future__ import annotations

from headwater.v1 import work_pools_pb2_grpc

from headwater_server.application import work_pools
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary

_S = "WorkPoolService."


class WorkPoolServicer(work_pools_pb2_grpc.WorkPoolServiceServicer):
    """The WorkPoolService gRPC methods: each request goes to its application operation."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateWorkPool = unary(work_pools.create_work_pool, _S + "CreateWorkPool")
    GetWorkPool = unary(work_pools.get_work_pool, _S + "GetWorkPool")
    ListWorkPools = unary(work_pools.list_work_pools, _S + "ListWorkPools")
    UpdateWorkPool = unary(work_pools.update_work_pool, _S + "UpdateWorkPool")
    DeleteWorkPool = unary(work_pools.delete_work_pool, _S + "DeleteWorkPool")
    CreateWorkQueue = unary(work_pools.create_work_queue, _S + "CreateWorkQueue")
    ListWorkQueues = unary(work_pools.list_work_queues, _S + "ListWorkQueues")
    UpdateWorkQueue = unary(work_pools.update_work_queue, _S + "UpdateWorkQueue")
    DeleteWorkQueue = unary(work_pools.delete_work_queue, _S + "DeleteWorkQueue")

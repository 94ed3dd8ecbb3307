"""ConcurrencyLimitService: the gRPC face of `application.concurrency_limits`."""

from __future__ import annotations

from headwater.v1 import concurrency_limits_pb2_grpc

from headwater_server.application import concurrency_limits as limits
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary

_S = "ConcurrencyLimitService."


class ConcurrencyLimitServicer(concurrency_limits_pb2_grpc.ConcurrencyLimitServiceServicer):
    """The ConcurrencyLimitService gRPC methods: each request goes to its application operation."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateConcurrencyLimit = unary(limits.create_concurrency_limit, _S + "CreateConcurrencyLimit")
    GetConcurrencyLimit = unary(limits.get_concurrency_limit, _S + "GetConcurrencyLimit")
    ListConcurrencyLimits = unary(limits.list_concurrency_limits, _S + "ListConcurrencyLimits")
    DeleteConcurrencyLimit = unary(limits.delete_concurrency_limit, _S + "DeleteConcurrencyLimit")
    ResetConcurrencyLimit = unary(limits.reset_concurrency_limit, _S + "ResetConcurrencyLimit")

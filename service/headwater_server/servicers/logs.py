"""LogService: the gRPC face of :mod:`headwater_server.application.logs`."""

from __future__ import annotations

from headwater.v1 import logs_pb2_grpc

from headwater_server.application import logs
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary


class LogServicer(logs_pb2_grpc.LogServiceServicer):
    """The LogService gRPC methods: each request goes to its application operation as is."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateLogs = unary(logs.create_logs, "LogService.CreateLogs")
    ListLogs = unary(logs.list_logs, "LogService.ListLogs")

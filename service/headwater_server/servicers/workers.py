"""WorkerService: the gRPC face of :mod:`headwater_server.application.workers`."""

from __future__ import annotations

from headwater.v1 import workers_pb2_grpc

from headwater_server.application import workers
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary

_S = "WorkerService."


class WorkerServicer(workers_pb2_grpc.WorkerServiceServicer):
    """The WorkerService gRPC methods: each request goes to its application operation."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    PollRuns = unary(workers.poll_runs, _S + "PollRuns")
    Heartbeat = unary(workers.heartbeat, _S + "Heartbeat")

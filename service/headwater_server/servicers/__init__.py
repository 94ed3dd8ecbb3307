"""The gRPC layer: one servicer per headwater.v1 service, each a thin translation.

A servicer method hands its request to the application layer's operation
(:mod:`headwater_server.application`) and returns its answer; :mod:`._common` maps errors from the
catalogue (:mod:`headwater_server.errors`) to rich gRPC statuses. The engine stream
(:mod:`.engine`) runs the same operations. :func:`add_servicers` registers them all on a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.v1 import (
    concurrency_limits_pb2_grpc,
    deployments_pb2_grpc,
    engine_pb2_grpc,
    flow_runs_pb2_grpc,
    flows_pb2_grpc,
    logs_pb2_grpc,
    task_runs_pb2_grpc,
    work_pools_pb2_grpc,
    workers_pb2_grpc,
)

from headwater_server.application.backend import Backend
from headwater_server.servicers._decoding import DecodeErrorInterceptor
from headwater_server.servicers.concurrency_limits import ConcurrencyLimitServicer
from headwater_server.servicers.deployments import DeploymentServicer
from headwater_server.servicers.engine import EngineServicer
from headwater_server.servicers.flow_runs import FlowRunServicer
from headwater_server.servicers.flows import FlowServicer
from headwater_server.servicers.logs import LogServicer
from headwater_server.servicers.task_runs import TaskRunServicer
from headwater_server.servicers.work_pools import WorkPoolServicer
from headwater_server.servicers.workers import WorkerServicer

if TYPE_CHECKING:
    import grpc.aio

__all__ = ["SERVICE_NAMES", "Backend", "DecodeErrorInterceptor", "add_servicers"]

# Full names of the services this package implements (for reflection and health).
SERVICE_NAMES: tuple[str, ...] = (
    "headwater.v1.FlowService",
    "headwater.v1.FlowRunService",
    "headwater.v1.TaskRunService",
    "headwater.v1.LogService",
    "headwater.v1.EngineService",
    "headwater.v1.DeploymentService",
    "headwater.v1.WorkPoolService",
    "headwater.v1.WorkerService",
    "headwater.v1.ConcurrencyLimitService",
)


def add_servicers(server: grpc.aio.Server, backend: Backend) -> None:
    """Register every headwater.v1 servicer on ``server``, all sharing ``backend``."""
    flows_pb2_grpc.add_FlowServiceServicer_to_server(FlowServicer(backend), server)
    flow_runs_pb2_grpc.add_FlowRunServiceServicer_to_server(FlowRunServicer(backend), server)
    task_runs_pb2_grpc.add_TaskRunServiceServicer_to_server(TaskRunServicer(backend), server)
    logs_pb2_grpc.add_LogServiceServicer_to_server(LogServicer(backend), server)
    engine_pb2_grpc.add_EngineServiceServicer_to_server(EngineServicer(backend), server)
    deployments_pb2_grpc.add_DeploymentServiceServicer_to_server(
        DeploymentServicer(backend), server
    )
    work_pools_pb2_grpc.add_WorkPoolServiceServicer_to_server(WorkPoolServicer(backend), server)
    workers_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerServicer(backend), server)
    concurrency_limits_pb2_grpc.add_ConcurrencyLimitServiceServicer_to_server(
        ConcurrencyLimitServicer(backend), server
    )

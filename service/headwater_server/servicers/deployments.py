"""DeploymentService: the gRPC face of :mod:`headwater_server.application.deployments`."""

from __future__ import annotations

from headwater.v1 import deployments_pb2_grpc

from headwater_server.application import deployments
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary

_S = "DeploymentService."


class DeploymentServicer(deployments_pb2_grpc.DeploymentServiceServicer):
    """The DeploymentService gRPC methods: each request goes to its application operation."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateDeployment = unary(deployments.create_deployment, _S + "CreateDeployment")
    GetDeployment = unary(deployments.get_deployment, _S + "GetDeployment")
    ListDeployments = unary(deployments.list_deployments, _S + "ListDeployments")
    UpdateDeployment = unary(deployments.update_deployment, _S + "UpdateDeployment")
    DeleteDeployment = unary(deployments.delete_deployment, _S + "DeleteDeployment")
    PauseDeployment = unary(deployments.pause_deployment, _S + "PauseDeployment")
    ResumeDeployment = unary(deployments.resume_deployment, _S + "ResumeDeployment")
    CreateFlowRunFromDeployment = unary(
        deployments.create_flow_run_from_deployment, _S + "CreateFlowRunFromDeployment"
    )
    BatchCreateFlowRunsFromDeployment = unary(
        deployments.batch_create_flow_runs_from_deployment,
        _S + "BatchCreateFlowRunsFromDeployment",
    )

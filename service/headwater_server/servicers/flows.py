"""FlowService: register, read, list and delete flows."""

from __future__ import annotations

from headwater.v1 import flows_pb2, flows_pb2_grpc

from headwater_server.servicers import _validation as check
from headwater_server.servicers._common import Backend, unary


async def create_flow(
    backend: Backend, request: flows_pb2.CreateFlowRequest
) -> flows_pb2.CreateFlowResponse:
    """Register a flow under a unique name."""
    check.required_text("name", request.name)
    check.optional_uuid("request_id", request.request_id)
    return await backend.db.run(backend.db.repository.create_flow, request)


async def get_flow(
    backend: Backend, request: flows_pb2.GetFlowRequest
) -> flows_pb2.GetFlowResponse:
    """Return one flow."""
    check.uuid("flow_id", request.flow_id)
    return await backend.db.run(backend.db.repository.get_flow, request)


async def list_flows(
    backend: Backend, request: flows_pb2.ListFlowsRequest
) -> flows_pb2.ListFlowsResponse:
    """Page through flows, newest first."""
    check.page_size("page_size", request.page_size)
    return await backend.db.run(backend.db.repository.list_flows, request)


async def delete_flow(
    backend: Backend, request: flows_pb2.DeleteFlowRequest
) -> flows_pb2.DeleteFlowResponse:
    """Delete a flow with all its runs; watchers of those runs learn it at once."""
    check.uuid("flow_id", request.flow_id)
    response = await backend.db.run(backend.db.repository.delete_flow, request)
    backend.hub.wake_all()
    return response


class FlowServicer(flows_pb2_grpc.FlowServiceServicer):
    """The FlowService gRPC methods, each a thin wrapper over the functions above."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateFlow = unary(create_flow, "FlowService.CreateFlow")
    GetFlow = unary(get_flow, "FlowService.GetFlow")
    ListFlows = unary(list_flows, "FlowService.ListFlows")
    DeleteFlow = unary(delete_flow, "FlowService.DeleteFlow")

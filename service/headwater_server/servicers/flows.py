"""FlowService: the gRPC face of :mod:`headwater_server.application.flows`."""

from __future__ import annotations

from headwater.v1 import flows_pb2_grpc

from headwater_server.application import flows
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary


class FlowServicer(flows_pb2_grpc.FlowServiceServicer):
    """The FlowService gRPC methods: each request goes to its application operation as is."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateFlow = unary(flows.create_flow, "FlowService.CreateFlow")
    GetFlow = unary(flows.get_flow, "FlowService.GetFlow")
    ListFlows = unary(flows.list_flows, "FlowService.ListFlows")
    DeleteFlow = unary(flows.delete_flow, "FlowService.DeleteFlow")

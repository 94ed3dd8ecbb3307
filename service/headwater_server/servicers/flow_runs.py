"""FlowRunService: the gRPC face of :mod:`headwater_server.application.flow_runs`.

The event-log reads (ListFlowRunEvents, WatchFlowRun) are application operations too, in
:mod:`headwater_server.application.flow_run_events`.
"""

from __future__ import annotations

from headwater.v1 import flow_runs_pb2_grpc

from headwater_server.application import flow_run_events, flow_runs
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import server_streaming, unary


class FlowRunServicer(flow_runs_pb2_grpc.FlowRunServiceServicer):
    """The FlowRunService gRPC methods: each request goes to its application operation as is."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateFlowRun = unary(flow_runs.create_flow_run, "FlowRunService.CreateFlowRun")
    GetFlowRun = unary(flow_runs.get_flow_run, "FlowRunService.GetFlowRun")
    ListFlowRuns = unary(flow_runs.list_flow_runs, "FlowRunService.ListFlowRuns")
    UpdateFlowRun = unary(flow_runs.update_flow_run, "FlowRunService.UpdateFlowRun")
    DeleteFlowRun = unary(flow_runs.delete_flow_run, "FlowRunService.DeleteFlowRun")
    SetFlowRunState = unary(flow_runs.set_flow_run_state, "FlowRunService.SetFlowRunState")
    CancelFlowRun = unary(flow_runs.cancel_flow_run, "FlowRunService.CancelFlowRun")
    ListFlowRunEvents = unary(
        flow_run_events.list_flow_run_events, "FlowRunService.ListFlowRunEvents"
    )
    WatchFlowRun = server_streaming(flow_run_events.watch_flow_run, "FlowRunService.WatchFlowRun")

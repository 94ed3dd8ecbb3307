"""FlowRunService: create, read, change and orchestrate flow runs.

The event-log reads (ListFlowRunEvents, WatchFlowRun) live in :mod:`.flow_run_events`. Every
write that adds a flow run event tells the hub, so long polls and watches wake at once.
"""

from __future__ import annotations

from headwater.v1 import flow_runs_pb2, flow_runs_pb2_grpc

from headwater_server import errors
from headwater_server.servicers import _validation as check
from headwater_server.servicers._common import Backend, server_streaming, unary
from headwater_server.servicers.flow_run_events import list_flow_run_events, watch_flow_run

_UPDATABLE = ("name", "tags")


def _announce(backend: Backend, run: flow_runs_pb2.FlowRun) -> None:
    backend.hub.notify(run.id, run.last_sequence)


async def create_flow_run(
    backend: Backend, request: flow_runs_pb2.CreateFlowRunRequest
) -> flow_runs_pb2.CreateFlowRunResponse:
    """Create a run of a flow (named or by id), PENDING unless a SCHEDULED state is given."""
    which = request.WhichOneof("flow")
    if which is None:
        raise errors.invalid_argument(
            "flow_id", "is required: set 'flow_id' (a flow's UUID) or 'flow_name'."
        )
    if which == "flow_id":
        check.uuid("flow_id", request.flow_id)
    else:
        check.required_text("flow_name", request.flow_name)
    check.json_object("parameters_json", request.parameters_json)
    check.optional_uuid("parent_flow_run_id", request.parent_flow_run_id)
    check.optional_uuid("parent_task_run_id", request.parent_task_run_id)
    check.optional_uuid("request_id", request.request_id)
    check.run_policy("policy", request.policy)
    check.initial_state("state", request.state, request.HasField("state"))
    response = await backend.db.run(backend.db.repository.create_flow_run, request)
    _announce(backend, response.flow_run)
    return response


async def get_flow_run(
    backend: Backend, request: flow_runs_pb2.GetFlowRunRequest
) -> flow_runs_pb2.GetFlowRunResponse:
    """Return one flow run with its current state."""
    check.uuid("flow_run_id", request.flow_run_id)
    return await backend.db.run(backend.db.repository.get_flow_run, request)


async def list_flow_runs(
    backend: Backend, request: flow_runs_pb2.ListFlowRunsRequest
) -> flow_runs_pb2.ListFlowRunsResponse:
    """Page through flow runs, newest first, with typed filters."""
    check.page_size("page_size", request.page_size)
    for index, flow_id in enumerate(request.filter.flow_ids):
        check.uuid(f"filter.flow_ids[{index}]", flow_id)
    check.state_types("filter.state_types", request.filter.state_types)
    check.optional_uuid("filter.parent_flow_run_id", request.filter.parent_flow_run_id)
    return await backend.db.run(backend.db.repository.list_flow_runs, request)


async def update_flow_run(
    backend: Backend, request: flow_runs_pb2.UpdateFlowRunRequest
) -> flow_runs_pb2.UpdateFlowRunResponse:
    """Change a run's name or tags, as listed in the update mask."""
    check.uuid("flow_run_id", request.flow_run_id)
    paths = check.update_mask("update_mask", request.update_mask, _UPDATABLE)
    if "name" in paths:
        check.required_text("name", request.name)
    return await backend.db.run(backend.db.repository.update_flow_run, request)


async def delete_flow_run(
    backend: Backend, request: flow_runs_pb2.DeleteFlowRunRequest
) -> flow_runs_pb2.DeleteFlowRunResponse:
    """Delete a run with its history; its watchers learn it at once."""
    flow_run_id = check.uuid("flow_run_id", request.flow_run_id)
    response = await backend.db.run(backend.db.repository.delete_flow_run, request)
    backend.hub.forget(flow_run_id)
    return response


async def set_flow_run_state(
    backend: Backend, request: flow_runs_pb2.SetFlowRunStateRequest
) -> flow_runs_pb2.SetFlowRunStateResponse:
    """Propose a state; the decision (ACCEPT, REJECT, WAIT, ABORT) is in the response."""
    check.uuid("flow_run_id", request.flow_run_id)
    check.proposed_state("state", request.state, request.HasField("state"))
    check.optional_uuid("transition_id", request.transition_id)
    check.optional_uuid("expected_state_id", request.expected_state_id)
    response = await backend.db.run(backend.db.repository.set_flow_run_state, request)
    _announce(backend, response.flow_run)
    return response


async def cancel_flow_run(
    backend: Backend, request: flow_runs_pb2.CancelFlowRunRequest
) -> flow_runs_pb2.CancelFlowRunResponse:
    """Cancel a run: CANCELLED at once when idle, CANCELLING while an engine runs it."""
    check.uuid("flow_run_id", request.flow_run_id)
    check.optional_uuid("request_id", request.request_id)
    response = await backend.db.run(backend.db.repository.cancel_flow_run, request)
    _announce(backend, response.flow_run)
    return response


class FlowRunServicer(flow_runs_pb2_grpc.FlowRunServiceServicer):
    """The FlowRunService gRPC methods, each a thin wrapper over the functions above."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateFlowRun = unary(create_flow_run, "FlowRunService.CreateFlowRun")
    GetFlowRun = unary(get_flow_run, "FlowRunService.GetFlowRun")
    ListFlowRuns = unary(list_flow_runs, "FlowRunService.ListFlowRuns")
    UpdateFlowRun = unary(update_flow_run, "FlowRunService.UpdateFlowRun")
    DeleteFlowRun = unary(delete_flow_run, "FlowRunService.DeleteFlowRun")
    SetFlowRunState = unary(set_flow_run_state, "FlowRunService.SetFlowRunState")
    CancelFlowRun = unary(cancel_flow_run, "FlowRunService.CancelFlowRun")
    ListFlowRunEvents = unary(list_flow_run_events, "FlowRunService.ListFlowRunEvents")
    WatchFlowRun = server_streaming(watch_flow_run, "FlowRunService.WatchFlowRun")

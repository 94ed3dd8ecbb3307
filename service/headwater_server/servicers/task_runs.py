"""TaskRunService: create, read and orchestrate the task runs inside a flow run."""

from __future__ import annotations

from headwater.v1 import task_runs_pb2, task_runs_pb2_grpc

from headwater_server.servicers import _validation as check
from headwater_server.servicers._common import Backend, unary


async def create_task_run(
    backend: Backend, request: task_runs_pb2.CreateTaskRunRequest
) -> task_runs_pb2.CreateTaskRunResponse:
    """Create a task run in a flow run, PENDING unless a SCHEDULED state is given."""
    check.uuid("flow_run_id", request.flow_run_id)
    check.required_text("task_key", request.task_key)
    check.required_text("dynamic_key", request.dynamic_key)
    check.json_object("parameters_json", request.parameters_json)
    check.optional_uuid("request_id", request.request_id)
    check.run_policy("policy", request.policy)
    check.initial_state("state", request.state, request.HasField("state"))
    return await backend.db.run(backend.db.repository.create_task_run, request)


async def get_task_run(
    backend: Backend, request: task_runs_pb2.GetTaskRunRequest
) -> task_runs_pb2.GetTaskRunResponse:
    """Return one task run with its current state."""
    check.uuid("task_run_id", request.task_run_id)
    return await backend.db.run(backend.db.repository.get_task_run, request)


async def list_task_runs(
    backend: Backend, request: task_runs_pb2.ListTaskRunsRequest
) -> task_runs_pb2.ListTaskRunsResponse:
    """Page through task runs in creation order."""
    check.page_size("page_size", request.page_size)
    check.optional_uuid("filter.flow_run_id", request.filter.flow_run_id)
    check.state_types("filter.state_types", request.filter.state_types)
    return await backend.db.run(backend.db.repository.list_task_runs, request)


async def delete_task_run(
    backend: Backend, request: task_runs_pb2.DeleteTaskRunRequest
) -> task_runs_pb2.DeleteTaskRunResponse:
    """Delete a task run and its states."""
    check.uuid("task_run_id", request.task_run_id)
    return await backend.db.run(backend.db.repository.delete_task_run, request)


async def set_task_run_state(
    backend: Backend, request: task_runs_pb2.SetTaskRunStateRequest
) -> task_runs_pb2.SetTaskRunStateResponse:
    """Propose a task run state; the decision is in the response."""
    check.uuid("task_run_id", request.task_run_id)
    check.proposed_state("state", request.state, request.HasField("state"))
    check.optional_uuid("transition_id", request.transition_id)
    check.optional_uuid("expected_state_id", request.expected_state_id)
    return await backend.db.run(backend.db.repository.set_task_run_state, request)


class TaskRunServicer(task_runs_pb2_grpc.TaskRunServiceServicer):
    """The TaskRunService gRPC methods, each a thin wrapper over the functions above."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateTaskRun = unary(create_task_run, "TaskRunService.CreateTaskRun")
    GetTaskRun = unary(get_task_run, "TaskRunService.GetTaskRun")
    ListTaskRuns = unary(list_task_runs, "TaskRunService.ListTaskRuns")
    DeleteTaskRun = unary(delete_task_run, "TaskRunService.DeleteTaskRun")
    SetTaskRunState = unary(set_task_run_state, "TaskRunService.SetTaskRunState")

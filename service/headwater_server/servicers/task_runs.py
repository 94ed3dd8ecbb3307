"""TaskRunService: the gRPC face of :mod:`headwater_server.application.task_runs`."""

from __future__ import annotations

from headwater.v1 import task_runs_pb2_grpc

from headwater_server.application import task_runs
from headwater_server.application.backend import Backend
from headwater_server.servicers._common import unary


class TaskRunServicer(task_runs_pb2_grpc.TaskRunServiceServicer):
    """The TaskRunService gRPC methods: each request goes to its application operation as is."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateTaskRun = unary(task_runs.create_task_run, "TaskRunService.CreateTaskRun")
    GetTaskRun = unary(task_runs.get_task_run, "TaskRunService.GetTaskRun")
    ListTaskRuns = unary(task_runs.list_task_runs, "TaskRunService.ListTaskRuns")
    ListTaskRunStates = unary(task_runs.list_task_run_states, "TaskRunService.ListTaskRunStates")
    DeleteTaskRun = unary(task_runs.delete_task_run, "TaskRunService.DeleteTaskRun")
    SetTaskRunState = unary(task_runs.set_task_run_state, "TaskRunService.SetTaskRunState")

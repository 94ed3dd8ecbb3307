"""LogService: store and page through the log lines runs emit."""

from __future__ import annotations

from headwater.v1 import logs_pb2, logs_pb2_grpc

from headwater_server import errors
from headwater_server.servicers import _validation as check
from headwater_server.servicers._common import Backend, unary

MAX_LINES_PER_CALL = 1000


async def create_logs(
    backend: Backend, request: logs_pb2.CreateLogsRequest
) -> logs_pb2.CreateLogsResponse:
    """Store a batch of log lines, all or none."""
    if len(request.logs) > MAX_LINES_PER_CALL:
        raise errors.invalid_argument(
            "logs",
            f"has {len(request.logs)} lines; send at most {MAX_LINES_PER_CALL} per call.",
        )
    for index, line in enumerate(request.logs):
        check.uuid(f"logs[{index}].flow_run_id", line.flow_run_id)
        check.optional_uuid(f"logs[{index}].task_run_id", line.task_run_id)
        check.non_negative(f"logs[{index}].level", line.level)
    check.optional_uuid("request_id", request.request_id)
    if not request.logs:
        return logs_pb2.CreateLogsResponse(created_count=0)
    return await backend.db.run(backend.db.repository.create_logs, request)


async def list_logs(
    backend: Backend, request: logs_pb2.ListLogsRequest
) -> logs_pb2.ListLogsResponse:
    """Page through log lines in time order."""
    check.page_size("page_size", request.page_size)
    check.optional_uuid("filter.flow_run_id", request.filter.flow_run_id)
    check.optional_uuid("filter.task_run_id", request.filter.task_run_id)
    return await backend.db.run(backend.db.repository.list_logs, request)


class LogServicer(logs_pb2_grpc.LogServiceServicer):
    """The LogService gRPC methods, each a thin wrapper over the functions above."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    CreateLogs = unary(create_logs, "LogService.CreateLogs")
    ListLogs = unary(list_logs, "LogService.ListLogs")

"""Logs: store and page through the log lines runs emit."""

from __future__ import annotations

from headwater.v1 import logs_pb2

from headwater_server.application import checks
from headwater_server.application.backend import Backend
from headwater_server.errors import invalid_argument

MAX_LINES_PER_CALL = 1000


async def create_logs(
    backend: Backend, request: logs_pb2.CreateLogsRequest
) -> logs_pb2.CreateLogsResponse:
    """Store a batch of log lines, all or none.

    A line belongs to a flow run, a task run, or both; a task called outside any flow has only
    its task run.
    """
    checks.at_most("logs", request.logs, MAX_LINES_PER_CALL, "lines")
    for index, line in enumerate(request.logs):
        if not line.flow_run_id and not line.task_run_id:
            raise invalid_argument(
                f"logs[{index}].flow_run_id",
                "is required unless task_run_id is set: a line belongs to a flow run, a task "
                "run, or both.",
            )
        checks.optional_uuid(f"logs[{index}].flow_run_id", line.flow_run_id)
        checks.optional_uuid(f"logs[{index}].task_run_id", line.task_run_id)
        checks.non_negative(f"logs[{index}].level", line.level)
        checks.short_text(f"logs[{index}].logger_name", line.logger_name)
        if line.HasField("log_time"):
            checks.timestamp(f"logs[{index}].log_time", line.log_time)
    checks.optional_uuid("request_id", request.request_id)
    if not request.logs:
        return logs_pb2.CreateLogsResponse(created_count=0)
    return await backend.db.run(backend.db.repository.create_logs, request)


async def list_logs(
    backend: Backend, request: logs_pb2.ListLogsRequest
) -> logs_pb2.ListLogsResponse:
    """Page through log lines in time order."""
    checks.page_size("page_size", request.page_size)
    checks.optional_uuid("filter.flow_run_id", request.filter.flow_run_id)
    checks.optional_uuid("filter.task_run_id", request.filter.task_run_id)
    return await backend.db.run(backend.db.repository.list_logs, request)

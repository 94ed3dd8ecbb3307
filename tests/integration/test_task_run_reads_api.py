"""Reading task runs back over real gRPC, on SQLite and on PostgreSQL: a task run's own state
history (ListTaskRunStates), newest-first listings, and the log lines of a task run called
outside any flow (which has no flow run to attach them to)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from headwater.v1 import logs_pb2, states_pb2, task_runs_pb2
from rpc_helpers import Api, error_details
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

S = states_pb2
T = task_runs_pb2


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _start(api: Api, **fields: object) -> T.TaskRun:
    fields.setdefault("task_key", f"mod.task-{uuid.uuid4().hex[:8]}")
    fields.setdefault("dynamic_key", "0")
    request = T.CreateTaskRunRequest(start=True, **fields)  # type: ignore[arg-type]
    return api.task_runs.CreateTaskRun(request).task_run


def test_a_loose_task_runs_history_is_listed_oldest_first_with_its_result(api: Api) -> None:
    task_run = _start(api)  # outside any flow: there are no flow run events to read
    done = api.task_runs.SetTaskRunState(
        T.SetTaskRunStateRequest(
            task_run_id=task_run.id,
            state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="[1, 2]")),
        )
    )
    assert done.result.decision == S.DECISION_ACCEPT

    first = api.task_runs.ListTaskRunStates(
        T.ListTaskRunStatesRequest(task_run_id=task_run.id, page_size=2)
    )
    assert [s.type for s in first.states] == [S.STATE_TYPE_PENDING, S.STATE_TYPE_RUNNING]
    rest = api.task_runs.ListTaskRunStates(
        T.ListTaskRunStatesRequest(task_run_id=task_run.id, page_token=first.next_page_token)
    )
    assert [s.type for s in rest.states] == [S.STATE_TYPE_COMPLETED]
    assert rest.states[0].result.json == "[1, 2]"
    assert rest.next_page_token == ""


def test_task_run_states_of_an_unknown_or_malformed_id_are_clear_errors(api: Api) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as unknown:
        api.task_runs.ListTaskRunStates(T.ListTaskRunStatesRequest(task_run_id=missing))
    details = error_details(unknown.value)
    assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_RUN_NOT_FOUND")
    assert missing in details.message
    with pytest.raises(grpc.RpcError) as malformed:
        api.task_runs.ListTaskRunStates(T.ListTaskRunStatesRequest(task_run_id="nope"))
    details = error_details(malformed.value)
    assert (details.code, details.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["task_run_id"])


def test_task_runs_can_be_listed_newest_first_page_by_page(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    ids = [_start(api, flow_run_id=run.id, dynamic_key=str(i)).id for i in range(3)]
    request = T.ListTaskRunsRequest(
        page_size=2, newest_first=True, filter=T.TaskRunFilter(flow_run_id=run.id)
    )
    first = api.task_runs.ListTaskRuns(request)
    request.page_token = first.next_page_token
    second = api.task_runs.ListTaskRuns(request)
    assert [t.id for t in [*first.task_runs, *second.task_runs]] == ids[::-1]
    # A token made for one order is refused by the other, rather than skipping rows.
    with pytest.raises(grpc.RpcError) as wrong_order:
        api.task_runs.ListTaskRuns(
            T.ListTaskRunsRequest(page_token=first.next_page_token, page_size=2)
        )
    assert error_details(wrong_order.value).fields == ["page_token"]


def test_a_loose_task_runs_log_lines_are_stored_with_the_task_run_alone(api: Api) -> None:
    task_run = _start(api)
    api.logs.CreateLogs(
        logs_pb2.CreateLogsRequest(
            logs=[logs_pb2.Log(task_run_id=task_run.id, level=20, message="on my own")]
        )
    )
    listed = api.logs.ListLogs(
        logs_pb2.ListLogsRequest(filter=logs_pb2.LogFilter(task_run_id=task_run.id))
    ).logs
    assert [(line.message, line.flow_run_id, line.task_run_id) for line in listed] == [
        ("on my own", "", task_run.id)
    ]


def test_a_log_line_needs_a_flow_run_or_a_known_task_run(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as neither:
        api.logs.CreateLogs(
            logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(level=20, message="whose?")])
        )
    details = error_details(neither.value)
    assert (details.code, details.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["logs[0].flow_run_id"],
    )
    assert "task_run_id" in details.message
    missing = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as unknown:
        api.logs.CreateLogs(
            logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(task_run_id=missing, message="x")])
        )
    details = error_details(unknown.value)
    assert (details.code, details.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_RUN_NOT_FOUND")
    assert missing in details.message

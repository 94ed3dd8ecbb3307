"""Bad input on every RPC family answers INVALID_ARGUMENT or NOT_FOUND with a useful message and
an ErrorInfo reason, and never takes the server down."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from headwater.v1 import engine_pb2, flow_runs_pb2, flows_pb2, logs_pb2, states_pb2, task_runs_pb2
from rpc_helpers import Api, EngineStream, error_details
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

FR = flow_runs_pb2
TR = task_runs_pb2
S = states_pb2
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNKNOWN_ID = "6f1b1c1e-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Case:
    """One bad request: which call, what to send, what must come back."""

    name: str
    call: Callable[[Api], Callable[..., Any]]
    request: Callable[[], Any]
    code: grpc.StatusCode
    reason: str
    mentions: str  # a word the message must contain (usually the field name)


def _state(state_type: int) -> S.State:
    state = S.State()
    state.type = state_type  # type: ignore[assignment] # raw ints, like a newer/buggy client
    return state


def _set_state(state_type: int, run_id: str = UNKNOWN_ID) -> FR.SetFlowRunStateRequest:
    return FR.SetFlowRunStateRequest(flow_run_id=run_id, state=_state(state_type))


CASES = [
    # FlowService
    Case(
        "create flow without name",
        lambda a: a.flows.CreateFlow,
        lambda: flows_pb2.CreateFlowRequest(),
        INVALID,
        "INVALID_ARGUMENT",
        "name",
    ),
    Case(
        "create flow with bad request_id",
        lambda a: a.flows.CreateFlow,
        lambda: flows_pb2.CreateFlowRequest(name="x", request_id="nope"),
        INVALID,
        "INVALID_ARGUMENT",
        "request_id",
    ),
    Case(
        "get flow malformed id",
        lambda a: a.flows.GetFlow,
        lambda: flows_pb2.GetFlowRequest(flow_id="123"),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_id",
    ),
    Case(
        "get flow unknown id",
        lambda a: a.flows.GetFlow,
        lambda: flows_pb2.GetFlowRequest(flow_id=UNKNOWN_ID),
        NOT_FOUND,
        "FLOW_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "list flows page too big",
        lambda a: a.flows.ListFlows,
        lambda: flows_pb2.ListFlowsRequest(page_size=5000),
        INVALID,
        "INVALID_ARGUMENT",
        "page_size",
    ),
    Case(
        "list flows bad token",
        lambda a: a.flows.ListFlows,
        lambda: flows_pb2.ListFlowsRequest(page_token="!!garbage!!"),
        INVALID,
        "INVALID_ARGUMENT",
        "page_token",
    ),
    Case(
        "delete flow missing id",
        lambda a: a.flows.DeleteFlow,
        lambda: flows_pb2.DeleteFlowRequest(),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_id",
    ),
    # FlowRunService
    Case(
        "create run without flow",
        lambda a: a.flow_runs.CreateFlowRun,
        lambda: FR.CreateFlowRunRequest(),
        INVALID,
        "INVALID_ARGUMENT",
        "flow",
    ),
    Case(
        "create run malformed flow id",
        lambda a: a.flow_runs.CreateFlowRun,
        lambda: FR.CreateFlowRunRequest(flow_id="abc"),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_id",
    ),
    Case(
        "create run unknown flow",
        lambda a: a.flow_runs.CreateFlowRun,
        lambda: FR.CreateFlowRunRequest(flow_id=UNKNOWN_ID),
        NOT_FOUND,
        "FLOW_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "create run parameters not an object",
        lambda a: a.flow_runs.CreateFlowRun,
        lambda: FR.CreateFlowRunRequest(flow_name="f", parameters_json="[1, 2]"),
        INVALID,
        "INVALID_ARGUMENT",
        "parameters_json",
    ),
    Case(
        "create run parameters not JSON",
        lambda a: a.flow_runs.CreateFlowRun,
        lambda: FR.CreateFlowRunRequest(flow_name="f", parameters_json="{x"),
        INVALID,
        "INVALID_ARGUMENT",
        "parameters_json",
    ),
    Case(
        "create run in RUNNING",
        lambda a: a.flow_runs.CreateFlowRun,
        lambda: FR.CreateFlowRunRequest(flow_name="f", state=_state(S.STATE_TYPE_RUNNING)),
        INVALID,
        "INVALID_ARGUMENT",
        "state.type",
    ),
    Case(
        "get run malformed id",
        lambda a: a.flow_runs.GetFlowRun,
        lambda: FR.GetFlowRunRequest(flow_run_id="zzz"),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_run_id",
    ),
    Case(
        "get run unknown id",
        lambda a: a.flow_runs.GetFlowRun,
        lambda: FR.GetFlowRunRequest(flow_run_id=UNKNOWN_ID),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "list runs unknown state filter",
        lambda a: a.flow_runs.ListFlowRuns,
        lambda: FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(state_types=[99])),
        INVALID,
        "INVALID_ARGUMENT",
        "state_types",
    ),
    Case(
        "list runs negative page size",
        lambda a: a.flow_runs.ListFlowRuns,
        lambda: FR.ListFlowRunsRequest(page_size=-1),
        INVALID,
        "INVALID_ARGUMENT",
        "page_size",
    ),
    Case(
        "update run without mask",
        lambda a: a.flow_runs.UpdateFlowRun,
        lambda: FR.UpdateFlowRunRequest(flow_run_id=UNKNOWN_ID, name="x"),
        INVALID,
        "INVALID_ARGUMENT",
        "update_mask",
    ),
    Case(
        "update run unknown mask path",
        lambda a: a.flow_runs.UpdateFlowRun,
        lambda: FR.UpdateFlowRunRequest(
            flow_run_id=UNKNOWN_ID, update_mask=field_mask_pb2.FieldMask(paths=["state"])
        ),
        INVALID,
        "INVALID_ARGUMENT",
        "state",
    ),
    Case(
        "delete run unknown id",
        lambda a: a.flow_runs.DeleteFlowRun,
        lambda: FR.DeleteFlowRunRequest(flow_run_id=UNKNOWN_ID),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "set state without state",
        lambda a: a.flow_runs.SetFlowRunState,
        lambda: FR.SetFlowRunStateRequest(flow_run_id=UNKNOWN_ID),
        INVALID,
        "INVALID_ARGUMENT",
        "state",
    ),
    Case(
        "set state unspecified type",
        lambda a: a.flow_runs.SetFlowRunState,
        lambda: _set_state(S.STATE_TYPE_UNSPECIFIED),
        INVALID,
        "INVALID_ARGUMENT",
        "STATE_TYPE_RUNNING",
    ),
    Case(
        "set state unknown enum 99",
        lambda a: a.flow_runs.SetFlowRunState,
        lambda: _set_state(99),
        INVALID,
        "INVALID_ARGUMENT",
        "99",
    ),
    Case(
        "set state malformed transition id",
        lambda a: a.flow_runs.SetFlowRunState,
        lambda: FR.SetFlowRunStateRequest(
            flow_run_id=UNKNOWN_ID, state=_state(S.STATE_TYPE_RUNNING), transition_id="t-1"
        ),
        INVALID,
        "INVALID_ARGUMENT",
        "transition_id",
    ),
    Case(
        "set state unknown run",
        lambda a: a.flow_runs.SetFlowRunState,
        lambda: _set_state(S.STATE_TYPE_RUNNING),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "cancel unknown run",
        lambda a: a.flow_runs.CancelFlowRun,
        lambda: FR.CancelFlowRunRequest(flow_run_id=UNKNOWN_ID),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "events malformed id",
        lambda a: a.flow_runs.ListFlowRunEvents,
        lambda: FR.ListFlowRunEventsRequest(flow_run_id="x"),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_run_id",
    ),
    Case(
        "events negative wait",
        lambda a: a.flow_runs.ListFlowRunEvents,
        lambda: FR.ListFlowRunEventsRequest(
            flow_run_id=UNKNOWN_ID, wait=duration_pb2.Duration(seconds=-1)
        ),
        INVALID,
        "INVALID_ARGUMENT",
        "wait",
    ),
    Case(
        "events unknown run",
        lambda a: a.flow_runs.ListFlowRunEvents,
        lambda: FR.ListFlowRunEventsRequest(flow_run_id=UNKNOWN_ID),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    # TaskRunService
    Case(
        "create task run without key",
        lambda a: a.task_runs.CreateTaskRun,
        lambda: TR.CreateTaskRunRequest(flow_run_id=UNKNOWN_ID, dynamic_key="0"),
        INVALID,
        "INVALID_ARGUMENT",
        "task_key",
    ),
    Case(
        "create task run malformed run id",
        lambda a: a.task_runs.CreateTaskRun,
        lambda: TR.CreateTaskRunRequest(flow_run_id="1", task_key="t", dynamic_key="0"),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_run_id",
    ),
    Case(
        "create task run unknown flow run",
        lambda a: a.task_runs.CreateTaskRun,
        lambda: TR.CreateTaskRunRequest(flow_run_id=UNKNOWN_ID, task_key="t", dynamic_key="0"),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "get task run unknown",
        lambda a: a.task_runs.GetTaskRun,
        lambda: TR.GetTaskRunRequest(task_run_id=UNKNOWN_ID),
        NOT_FOUND,
        "TASK_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "set task state unknown enum",
        lambda a: a.task_runs.SetTaskRunState,
        lambda: TR.SetTaskRunStateRequest(task_run_id=UNKNOWN_ID, state=_state(42)),
        INVALID,
        "INVALID_ARGUMENT",
        "state.type",
    ),
    Case(
        "list task runs malformed filter",
        lambda a: a.task_runs.ListTaskRuns,
        lambda: TR.ListTaskRunsRequest(filter=TR.TaskRunFilter(flow_run_id="bad")),
        INVALID,
        "INVALID_ARGUMENT",
        "flow_run_id",
    ),
    # LogService
    Case(
        "log line without run",
        lambda a: a.logs.CreateLogs,
        lambda: logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(message="hi")]),
        INVALID,
        "INVALID_ARGUMENT",
        "logs[0].flow_run_id",
    ),
    Case(
        "log line for unknown run",
        lambda a: a.logs.CreateLogs,
        lambda: logs_pb2.CreateLogsRequest(
            logs=[logs_pb2.Log(flow_run_id=UNKNOWN_ID, message="hi")]
        ),
        NOT_FOUND,
        "FLOW_RUN_NOT_FOUND",
        UNKNOWN_ID,
    ),
    Case(
        "too many log lines",
        lambda a: a.logs.CreateLogs,
        lambda: logs_pb2.CreateLogsRequest(
            logs=[logs_pb2.Log(flow_run_id=UNKNOWN_ID, message="x")] * 1001
        ),
        INVALID,
        "INVALID_ARGUMENT",
        "1000",
    ),
    Case(
        "list logs malformed filter",
        lambda a: a.logs.ListLogs,
        lambda: logs_pb2.ListLogsRequest(filter=logs_pb2.LogFilter(task_run_id="t")),
        INVALID,
        "INVALID_ARGUMENT",
        "task_run_id",
    ),
]


@pytest.fixture(scope="module")
def api(sqlite_server: ServerProcess) -> Iterator[Api]:
    with sqlite_server.channel() as channel:
        yield Api(channel)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_unary_request_gets_a_useful_error(api: Api, case: Case) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        case.call(api)(case.request(), timeout=10)
    details = error_details(caught.value)
    assert details.code == case.code, details
    assert details.reason == case.reason, details
    assert details.domain == "headwater.dev"
    assert case.mentions in details.message, details
    if case.code == INVALID:
        assert details.fields, "INVALID_ARGUMENT must name the field in a BadRequest detail"


def test_bad_watch_requests(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(api.flow_runs.WatchFlowRun(FR.WatchFlowRunRequest(flow_run_id="nope"), timeout=10))
    details = error_details(caught.value)
    assert details.code == INVALID and "flow_run_id" in details.message
    with pytest.raises(grpc.RpcError) as caught:
        list(api.flow_runs.WatchFlowRun(FR.WatchFlowRunRequest(flow_run_id=UNKNOWN_ID)))
    assert error_details(caught.value).reason == "FLOW_RUN_NOT_FOUND"


def test_bad_engine_stream_operations_answer_errors_and_keep_the_stream(api: Api) -> None:
    stream = EngineStream(api)
    stream.send_raw(engine_pb2.ConnectRequest(sequence=7))  # no operation at all
    empty = stream.receive()
    assert empty.sequence == 7
    assert empty.error.code == INVALID.value[0] and "operation" in empty.error.message

    cases = [
        (dict(set_flow_run_state=_set_state(99)), INVALID, "INVALID_ARGUMENT"),
        (
            dict(set_flow_run_state=_set_state(S.STATE_TYPE_RUNNING, "bad")),
            INVALID,
            "INVALID_ARGUMENT",
        ),
        (
            dict(set_flow_run_state=_set_state(S.STATE_TYPE_RUNNING)),
            NOT_FOUND,
            "FLOW_RUN_NOT_FOUND",
        ),
        (dict(create_flow_run=FR.CreateFlowRunRequest()), INVALID, "INVALID_ARGUMENT"),
        (dict(get_flow_run=FR.GetFlowRunRequest(flow_run_id="")), INVALID, "INVALID_ARGUMENT"),
        (
            dict(create_task_run=TR.CreateTaskRunRequest(flow_run_id=UNKNOWN_ID)),
            INVALID,
            "INVALID_ARGUMENT",
        ),
        (
            dict(set_task_run_state=TR.SetTaskRunStateRequest(task_run_id=UNKNOWN_ID)),
            INVALID,
            "INVALID_ARGUMENT",
        ),
        (
            dict(create_logs=logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(flow_run_id="x")])),
            INVALID,
            "INVALID_ARGUMENT",
        ),
    ]
    for operation, code, reason in cases:
        answer = stream.call(**operation)
        assert answer.WhichOneof("outcome") == "error", (operation, answer)
        assert answer.error.code == code.value[0], (operation, answer)
        assert answer.error.reason == reason, (operation, answer)
        assert answer.error.message, operation

    run = api.new_run(api.new_flow().id)
    ok = stream.call(get_flow_run=FR.GetFlowRunRequest(flow_run_id=run.id))
    assert ok.get_flow_run.flow_run.id == run.id
    assert stream.close() == []


def test_the_server_still_answers_after_all_bad_input(
    api: Api, sqlite_server: ServerProcess
) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", "headwater.v1.FlowRunService", "headwater.v1.EngineService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert sqlite_server.running
    flow = api.new_flow("still-alive")
    assert api.flows.GetFlow(flows_pb2.GetFlowRequest(flow_id=flow.id)).flow.name == flow.name
    # Bad input is the caller's mistake: none of it may reach the "unexpected error" path.
    assert "Unexpected error" not in sqlite_server.output()


def test_unknown_ids_in_upper_case_are_still_uuids(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=str(uuid.uuid4()).upper()))
    assert caught.value.code() == NOT_FOUND

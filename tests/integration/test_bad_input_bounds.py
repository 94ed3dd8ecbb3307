"""Hostile input at the edges of what the wire and the databases can hold gets a clear
INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for size limits), never INTERNAL or UNKNOWN, and the
same answer on SQLite and PostgreSQL.

Each test here reproduces one finding of a fuzzing run (issue 9, item 6): times beyond what a
Timestamp can hold, crafted page tokens, deeply nested or non-standard JSON, NUL characters and
over-long state names (which only PostgreSQL refused), undecodable request bytes, huge filters,
huge ids echoed into error trailers, and messages over the size limit.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from headwater.v1 import (
    engine_pb2,
    flow_runs_pb2,
    flows_pb2,
    logs_pb2,
    states_pb2,
    task_runs_pb2,
)
from rpc_helpers import Api, EngineStream, error_details
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

FR = flow_runs_pb2
TR = task_runs_pb2
S = states_pb2
INVALID = grpc.StatusCode.INVALID_ARGUMENT
YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z in seconds
REPLACEMENT = "\ufffd"


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _invalid(call: Callable[[], Any], mentions: str) -> str:
    """Assert ``call`` fails with INVALID_ARGUMENT naming ``mentions``; return the message."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = error_details(caught.value)
    assert details.code == INVALID, details
    assert mentions in details.message, details
    assert details.fields, details
    return details.message


def _invalid_proposals(api: Api, run: FR.FlowRun, state: S.State, mentions: str) -> None:
    """Propose ``state`` to ``run`` and to a new task run of it: both INVALID_ARGUMENT."""
    _invalid(
        lambda: api.flow_runs.SetFlowRunState(
            FR.SetFlowRunStateRequest(flow_run_id=run.id, state=state)
        ),
        mentions,
    )
    task_run = _task_run(api, run.id)
    _invalid(
        lambda: api.task_runs.SetTaskRunState(
            TR.SetTaskRunStateRequest(task_run_id=task_run.id, state=state)
        ),
        mentions,
    )


def _scheduled(seconds: int, nanos: int = 0) -> S.State:
    return S.State(
        type=S.STATE_TYPE_SCHEDULED,
        scheduled_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
    )


def _task_run(api: Api, flow_run_id: str, **fields: Any) -> TR.TaskRun:
    request = TR.CreateTaskRunRequest(
        flow_run_id=flow_run_id, task_key="mod.task", dynamic_key=uuid.uuid4().hex, **fields
    )
    return api.task_runs.CreateTaskRun(request).task_run


# ---------------------------------------------------------------------------- times


OUT_OF_RANGE_TIMES = [
    pytest.param(YEAR_10000, 0, id="year-10000"),
    pytest.param(2**62, 0, id="2^62-s"),
    pytest.param(-62_135_596_801, 0, id="before-year-1"),
    pytest.param(0, 1_000_000_000, id="nanos-overflow"),
    pytest.param(0, -1, id="negative-nanos"),
]


@pytest.mark.parametrize(("seconds", "nanos"), OUT_OF_RANGE_TIMES)
def test_scheduled_time_out_of_range(api: Api, seconds: int, nanos: int) -> None:
    run = api.new_run(api.new_flow().id)
    state = _scheduled(seconds, nanos)
    _invalid_proposals(api, run, state, "state.scheduled_time")
    _invalid(
        lambda: api.flow_runs.CreateFlowRun(
            FR.CreateFlowRunRequest(flow_id=run.flow_id, state=state)
        ),
        "state.scheduled_time",
    )
    _invalid(
        lambda: api.logs.CreateLogs(
            logs_pb2.CreateLogsRequest(
                logs=[
                    logs_pb2.Log(
                        flow_run_id=run.id,
                        message="m",
                        log_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
                    )
                ]
            )
        ),
        "logs[0].log_time",
    )
    stream = EngineStream(api)
    answer = stream.call(
        set_flow_run_state=FR.SetFlowRunStateRequest(flow_run_id=run.id, state=state)
    )
    assert answer.WhichOneof("outcome") == "error", answer
    assert answer.error.code == INVALID.value[0], answer
    assert "state.scheduled_time" in answer.error.message
    assert stream.close() == []
    # Nothing was stored: the run is still in its first state (the other events are the
    # states of the task run the proposals were also tried on).
    assert api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=run.id)).flow_run.state.type
    assert [e.WhichOneof("kind") for e in api.events(run.id)].count("state_changed") == 1


def test_the_last_valid_instant_is_accepted(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    state = _scheduled(YEAR_10000 - 1, 999_999_999)
    answer = api.flow_runs.SetFlowRunState(
        FR.SetFlowRunStateRequest(flow_run_id=run.id, state=state)
    )
    assert answer.result.decision == S.DECISION_ACCEPT
    assert answer.result.state.scheduled_time.seconds == YEAR_10000 - 1


def test_a_huge_retry_delay_is_refused_at_create(api: Api) -> None:
    flow = api.new_flow()
    policy = S.RunPolicy(retries=2, retry_delay=duration_pb2.Duration(seconds=10**12))
    _invalid(lambda: api.new_run(flow.id, policy=policy), "policy.retry_delay")
    run = api.new_run(flow.id)
    _invalid(lambda: _task_run(api, run.id, policy=policy), "policy.retry_delay")


def test_the_longest_retry_delay_still_retries(api: Api) -> None:
    """The largest delay allowed at create must not overflow when a FAILED proposal adds it."""
    longest = 10 * 366 * 24 * 3600  # a little over the limit is refused, this is below it
    policy = S.RunPolicy(retries=1, retry_delay=duration_pb2.Duration(seconds=longest - 86400 * 20))
    run = api.new_run(api.new_flow().id, policy=policy)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    failed = api.propose(run.id, S.STATE_TYPE_FAILED)
    assert failed.result.decision == S.DECISION_REJECT
    assert failed.result.state.name == "AwaitingRetry"


# ---------------------------------------------------------------------------- page tokens


def _token(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


LIST_CALLS: dict[str, Callable[[Api, str], Any]] = {
    "flows": lambda a, t: a.flows.ListFlows(flows_pb2.ListFlowsRequest(page_token=t)),
    "flow_runs": lambda a, t: a.flow_runs.ListFlowRuns(FR.ListFlowRunsRequest(page_token=t)),
    "task_runs": lambda a, t: a.task_runs.ListTaskRuns(TR.ListTaskRunsRequest(page_token=t)),
    "task_runs_newest": lambda a, t: a.task_runs.ListTaskRuns(
        TR.ListTaskRunsRequest(page_token=t, newest_first=True)
    ),
    "task_run_states": lambda a, t: a.task_runs.ListTaskRunStates(
        TR.ListTaskRunStatesRequest(task_run_id=str(uuid.uuid4()), page_token=t)
    ),
    "logs": lambda a, t: a.logs.ListLogs(logs_pb2.ListLogsRequest(page_token=t)),
}

CRAFTED_TOKENS = [
    pytest.param(lambda c: _token(c, 18446744073709551616, "x"), id="2^64"),
    pytest.param(lambda c: _token(c, -(2**70), "x"), id="-2^70"),
    pytest.param(lambda c: _token(c, True, "x"), id="bool"),
    pytest.param(lambda c: _token(c, 1.5, "x"), id="float"),
    pytest.param(lambda c: _token(c, 1, "x" * 5000), id="long-id"),
    pytest.param(lambda c: _token(c, 1, "x\x00"), id="nul-id"),
    pytest.param(lambda c: _token(c, 1), id="two-parts"),
    pytest.param(lambda c: _token({"a": 1}, 1, "x"), id="dict-kind"),
    pytest.param(lambda c: "\u00e9\u00e9", id="non-ascii"),
    pytest.param(lambda c: _token(c, 1, "x") + "\x00", id="nul-suffix"),
]


@pytest.mark.parametrize("collection", sorted(LIST_CALLS))
@pytest.mark.parametrize("make_token", CRAFTED_TOKENS)
def test_crafted_page_tokens(api: Api, collection: str, make_token: Callable[[str], str]) -> None:
    _invalid(lambda: LIST_CALLS[collection](api, make_token(collection)), "page_token")


# ---------------------------------------------------------------------------- JSON


BAD_JSON = [
    pytest.param('{"a": ' + "[" * 1000 + "]" * 1000 + "}", "deep", id="nested-1000"),
    pytest.param('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "deep", id="nested-100000"),
    pytest.param('{"a": NaN}', "NaN", id="nan"),
    pytest.param('{"a": Infinity}', "Infinity", id="infinity"),
    pytest.param('{"a": -Infinity}', "Infinity", id="minus-infinity"),
]


@pytest.mark.parametrize(("text", "mentions"), BAD_JSON)
def test_parameters_json_must_be_standard_and_shallow(api: Api, text: str, mentions: str) -> None:
    flow = api.new_flow()
    message = _invalid(lambda: api.new_run(flow.id, parameters_json=text), "parameters_json")
    assert mentions in message
    run = api.new_run(flow.id)
    _invalid(lambda: _task_run(api, run.id, parameters_json=text), "parameters_json")


def test_moderately_nested_parameters_are_fine(api: Api) -> None:
    text = '{"a": ' + "[" * 60 + "]" * 60 + "}"
    run = api.new_run(api.new_flow().id, parameters_json=text)
    assert json.loads(run.parameters_json) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    ["{x", "NaN", '{"a": Infinity}', "[" * 1000 + "]" * 1000, ""],
    ids=["not-json", "nan", "infinity", "nested", "empty"],
)
def test_result_json_is_checked(api: Api, text: str) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    state = S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json=text))
    _invalid_proposals(api, run, state, "state.result.json")


def test_a_json_result_is_stored(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    state = S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json='[1, "two", null]'))
    answer = api.flow_runs.SetFlowRunState(
        FR.SetFlowRunStateRequest(flow_run_id=run.id, state=state)
    )
    assert answer.result.state.result.json == '[1, "two", null]'


# ---------------------------------------------------------------------------- NUL and long names


def test_nul_in_names_and_identifiers_is_refused(api: Api) -> None:
    flow = api.new_flow()
    _invalid(lambda: api.new_run(flow.id, name="a\x00b"), "name")
    _invalid(lambda: api.new_run(flow.id, tags=["ok", "a\x00b"]), "tags")
    _invalid(lambda: api.new_run(flow.id, idempotency_key="k\x00"), "idempotency_key")
    _invalid(lambda: api.new_run(flow.id, flow_version="1\x00"), "flow_version")
    _invalid(
        lambda: api.flow_runs.CreateFlowRun(FR.CreateFlowRunRequest(flow_name="f\x00")),
        "flow_name",
    )
    run = api.new_run(flow.id)
    _invalid(lambda: _task_run(api, run.id, cache_key="c\x00"), "cache_key")
    _invalid(
        lambda: api.task_runs.CreateTaskRun(
            TR.CreateTaskRunRequest(flow_run_id=run.id, task_key="t\x00", dynamic_key="0")
        ),
        "task_key",
    )
    state = S.State(type=S.STATE_TYPE_RUNNING, name="Run\x00ning")
    _invalid(
        lambda: api.flow_runs.SetFlowRunState(
            FR.SetFlowRunStateRequest(flow_run_id=run.id, state=state)
        ),
        "state.name",
    )
    _invalid(
        lambda: api.flow_runs.ListFlowRuns(
            FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(tags=["a\x00"]))
        ),
        "filter.tags",
    )


def test_state_names_over_255_characters_are_refused(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    state = S.State(type=S.STATE_TYPE_RUNNING, name="x" * 256)
    _invalid_proposals(api, run, state, "at most 255")
    scheduled = S.State(type=S.STATE_TYPE_SCHEDULED, name="y" * 300)
    _invalid(
        lambda: api.flow_runs.CreateFlowRun(
            FR.CreateFlowRunRequest(flow_id=run.flow_id, state=scheduled)
        ),
        "state.name",
    )


def test_nul_in_free_text_is_stored_as_a_replacement_character(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    state = S.State(
        type=S.STATE_TYPE_FAILED,
        message="bad \x00 value",
        failure=S.Failure(exception_type="builtins.ValueError", message="bad \x00 value"),
    )
    answer = api.flow_runs.SetFlowRunState(
        FR.SetFlowRunStateRequest(flow_run_id=run.id, state=state)
    )
    assert answer.result.decision == S.DECISION_ACCEPT
    stored = api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=run.id)).flow_run.state
    assert stored.type == S.STATE_TYPE_FAILED
    assert stored.message == f"bad {REPLACEMENT} value"
    assert stored.failure.message == "bad \x00 value"  # opaque payload: kept exactly

    api.logs.CreateLogs(
        logs_pb2.CreateLogsRequest(
            logs=[logs_pb2.Log(flow_run_id=run.id, logger_name="a\x00b", message="x\x00y")]
        )
    )
    lines = api.logs.ListLogs(
        logs_pb2.ListLogsRequest(filter=logs_pb2.LogFilter(flow_run_id=run.id))
    ).logs
    assert [(line.logger_name, line.message) for line in lines] == [
        (f"a{REPLACEMENT}b", f"x{REPLACEMENT}y")
    ]


def test_nul_in_a_cancellation_reason_is_stored_as_a_replacement_character(api: Api) -> None:
    """The reason becomes the CANCELLED state's message: free text, like any state message."""
    run = api.new_run(api.new_flow().id)
    answer = api.flow_runs.CancelFlowRun(
        FR.CancelFlowRunRequest(flow_run_id=run.id, reason="stop \x00 now")
    )
    assert answer.flow_run.state.type == S.STATE_TYPE_CANCELLED
    assert answer.flow_run.state.message == f"stop {REPLACEMENT} now"
    stored = api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=run.id)).flow_run.state
    assert stored.message == f"stop {REPLACEMENT} now"


FAILING_FLOW = textwrap.dedent(
    """
    import sys
    from headwater import flow

    @flow(name=sys.argv[1])
    def fails():
        raise ValueError("bad \\x00 byte")

    try:
        fails()
    except ValueError as exc:
        print("RAISED", repr(str(exc)), flush=True)
    """
)


def test_a_flow_raising_a_nul_message_ends_failed(
    api: Api, server: ServerProcess, tmp_path: Path
) -> None:
    name = f"nul-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, HEADWATER_API_URL=server.address, HEADWATER_HOME=str(tmp_path))
    env.pop("HEADWATER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", FAILING_FLOW, name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The caller gets its own exception back, not a service error.
    assert "RAISED 'bad \\x00 byte'" in done.stdout, done.stdout + done.stderr
    runs = api.flow_runs.ListFlowRuns(
        FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(flow_name=name))
    ).flow_runs
    assert len(runs) == 1
    state = runs[0].state
    assert S.StateType.Name(state.type) == "STATE_TYPE_FAILED", state
    assert f"bad {REPLACEMENT} byte" in state.message


# ---------------------------------------------------------------------------- filters and ids


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("tags", [f"t{i}" for i in range(1000)]),
        ("flow_ids", [str(uuid.uuid4()) for _ in range(1000)]),
        ("state_types", [S.STATE_TYPE_RUNNING] * 1000),
    ],
)
def test_filters_are_bounded(api: Api, field: str, values: list[Any]) -> None:
    request = FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(**{field: values}))
    message = _invalid(lambda: api.flow_runs.ListFlowRuns(request), f"filter.{field}")
    assert "100" in message


def test_task_run_state_filter_is_bounded(api: Api) -> None:
    request = TR.ListTaskRunsRequest(
        filter=TR.TaskRunFilter(state_types=[S.STATE_TYPE_RUNNING] * 1000)
    )
    _invalid(lambda: api.task_runs.ListTaskRuns(request), "filter.state_types")


def test_a_filter_at_the_limit_works(api: Api) -> None:
    tags = [f"t{i}" for i in range(100)]  # a run must carry every tag of the filter
    run = api.new_run(api.new_flow().id, tags=tags)
    request = FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(tags=tags, flow_ids=[run.flow_id]))
    assert [r.id for r in api.flow_runs.ListFlowRuns(request).flow_runs] == [run.id]


@pytest.mark.parametrize("size", [4096, 100_000, 3 * 1024 * 1024])
def test_huge_bad_values_are_not_echoed_whole(api: Api, size: int) -> None:
    value = "x" * size
    calls: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=value)),
            "flow_run_id",
        ),
        (lambda: api.flows.CreateFlow(flows_pb2.CreateFlowRequest(name=value + "!")), "name"),
        (
            lambda: api.flow_runs.CreateFlowRun(FR.CreateFlowRunRequest(flow_name=value + "!")),
            "flow_name",
        ),
        (
            lambda: api.flow_runs.ListFlowRuns(FR.ListFlowRunsRequest(page_token=value)),
            "page_token",
        ),
    ]
    for call, field in calls:
        message = _invalid(call, field)
        assert len(message) < 1000, message[:200]


# ---------------------------------------------------------------------------- the wire


UNARY_METHODS = [
    "/headwater.v1.FlowService/CreateFlow",
    "/headwater.v1.FlowService/GetFlow",
    "/headwater.v1.FlowService/ListFlows",
    "/headwater.v1.FlowService/DeleteFlow",
    "/headwater.v1.FlowRunService/CreateFlowRun",
    "/headwater.v1.FlowRunService/GetFlowRun",
    "/headwater.v1.FlowRunService/ListFlowRuns",
    "/headwater.v1.FlowRunService/UpdateFlowRun",
    "/headwater.v1.FlowRunService/DeleteFlowRun",
    "/headwater.v1.FlowRunService/SetFlowRunState",
    "/headwater.v1.FlowRunService/CancelFlowRun",
    "/headwater.v1.FlowRunService/ListFlowRunEvents",
    "/headwater.v1.TaskRunService/CreateTaskRun",
    "/headwater.v1.TaskRunService/GetTaskRun",
    "/headwater.v1.TaskRunService/ListTaskRuns",
    "/headwater.v1.TaskRunService/ListTaskRunStates",
    "/headwater.v1.TaskRunService/DeleteTaskRun",
    "/headwater.v1.TaskRunService/SetTaskRunState",
    "/headwater.v1.LogService/CreateLogs",
    "/headwater.v1.LogService/ListLogs",
]


def _invalid_utf8(method: str) -> bytes:
    """A request whose first string field holds bytes that are not UTF-8."""
    from google.protobuf import descriptor_pool
    from google.protobuf.descriptor import FieldDescriptor

    service, name = method.strip("/").split("/")
    request = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name].input_type
    number = next(f.number for f in request.fields if f.type == FieldDescriptor.TYPE_STRING)
    return bytes([number << 3 | 2, 2, 0xC3, 0x28])


UNDECODABLE: list[Any] = [
    pytest.param(lambda method: b"\xff\xff\xff", id="corrupt-wire"),
    pytest.param(lambda method: b"\x12\x05ab", id="truncated-field"),
    pytest.param(_invalid_utf8, id="invalid-utf8"),
]


def test_every_unary_method_is_listed(api: Api) -> None:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    listed = set()
    for service in ("FlowService", "FlowRunService", "TaskRunService", "LogService"):
        descriptor = pool.FindServiceByName(f"headwater.v1.{service}")
        for method in descriptor.methods:
            if not method.server_streaming and not method.client_streaming:
                listed.add(f"/headwater.v1.{service}/{method.name}")
    assert listed == set(UNARY_METHODS)


@pytest.mark.parametrize("method", UNARY_METHODS)
@pytest.mark.parametrize("raw", UNDECODABLE)
def test_undecodable_requests_are_invalid_argument(
    api: Api, method: str, raw: Callable[[str], bytes]
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.channel.unary_unary(method)(raw(method), timeout=10)
    details = error_details(caught.value)
    assert details.code == INVALID, details
    assert "decode" in details.message, details


def test_undecodable_watch_request_is_invalid_argument(api: Api) -> None:
    call = api.channel.unary_stream("/headwater.v1.FlowRunService/WatchFlowRun")
    with pytest.raises(grpc.RpcError) as caught:
        list(call(b"\xff\xff\xff", timeout=10))
    assert error_details(caught.value).code == INVALID


def test_an_undecodable_engine_operation_is_answered_and_the_stream_goes_on(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    good = engine_pb2.ConnectRequest(
        sequence=2, get_flow_run=FR.GetFlowRunRequest(flow_run_id=run.id)
    ).SerializeToString()
    connect = api.channel.stream_stream("/headwater.v1.EngineService/Connect")
    answers = [
        engine_pb2.ConnectResponse.FromString(raw)
        for raw in connect(iter([b"\xff\xff\xff", good]), timeout=10)
    ]
    assert [answer.WhichOneof("outcome") for answer in answers] == ["error", "get_flow_run"]
    error = answers[0].error
    assert error.code == INVALID.value[0] and error.reason == "INVALID_ARGUMENT"
    assert "decode" in error.message
    assert answers[1].sequence == 2 and answers[1].get_flow_run.flow_run.id == run.id


def test_a_request_over_the_size_limit_is_resource_exhausted(server: ServerProcess) -> None:
    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(server.address, options=options) as channel:
        api = Api(channel)
        big = "x" * (5 * 1024 * 1024)
        with pytest.raises(grpc.RpcError) as caught:
            api.flow_runs.CreateFlowRun(FR.CreateFlowRunRequest(flow_name="f", name=big))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The server is fine afterwards.
        assert api.new_flow().id

"""Task runs through the service over real gRPC, on SQLite and on PostgreSQL.

Create-and-start in one call, runs outside any flow, retries the service decides (delay lists,
jitter), the task cache across two connections (hits, expiry, refresh), bad input, and the engine
stream: task proposals sent without waiting are all stored before the flow's final state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from headwater.v1 import engine_pb2, flow_runs_pb2, states_pb2, task_runs_pb2
from rpc_helpers import Api, EngineStream, error_details
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

S = states_pb2
T = task_runs_pb2


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(value * 1e9))
    return duration


def _start(api: Api, **fields: object) -> T.CreateTaskRunResponse:
    """Create-and-start a task run with a fresh task key unless one is given."""
    fields.setdefault("task_key", f"mod.task-{uuid.uuid4().hex[:8]}")
    fields.setdefault("dynamic_key", "0")
    return api.task_runs.CreateTaskRun(T.CreateTaskRunRequest(start=True, **fields))  # type: ignore[arg-type]


def _propose(
    api: Api, task_run_id: str, state: S.State, **fields: object
) -> T.SetTaskRunStateResponse:
    return api.task_runs.SetTaskRunState(
        T.SetTaskRunStateRequest(task_run_id=task_run_id, state=state, **fields)  # type: ignore[arg-type]
    )


def _complete(api: Api, task_run_id: str, json: str) -> None:
    done = _propose(
        api, task_run_id, S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json=json))
    )
    assert done.result.decision == S.DECISION_ACCEPT


def test_create_and_start_is_one_call_that_returns_the_decision(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    started = _start(api, flow_run_id=run.id, tags=["a"], parameters_json='{"x": 1}')
    assert started.created
    assert started.result.decision == S.DECISION_ACCEPT
    assert started.task_run.state.type == S.STATE_TYPE_RUNNING
    assert started.task_run.run_count == 1
    assert started.task_run.flow_run_id == run.id
    listed = api.task_runs.ListTaskRuns(
        T.ListTaskRunsRequest(filter=T.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert [(t.id, t.state.type) for t in listed] == [(started.task_run.id, S.STATE_TYPE_RUNNING)]


def test_a_task_outside_any_flow_is_its_own_run_every_call(api: Api) -> None:
    first = _start(api, task_key="mod.loose", dynamic_key="0")
    second = _start(api, task_key="mod.loose", dynamic_key="0")
    assert first.task_run.flow_run_id == second.task_run.flow_run_id == ""
    assert first.task_run.id != second.task_run.id
    assert first.result.decision == second.result.decision == S.DECISION_ACCEPT


def test_a_duplicate_create_returns_the_existing_run_as_prefect_does(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    first = _start(api, flow_run_id=run.id, task_key="mod.dup", dynamic_key="3")
    again = api.task_runs.CreateTaskRun(
        T.CreateTaskRunRequest(flow_run_id=run.id, task_key="mod.dup", dynamic_key="3")
    )
    assert (again.created, again.task_run.id) == (False, first.task_run.id)
    assert not again.HasField("result")
    # Started again while it runs: the service refuses a second execution.
    twice = _start(api, flow_run_id=run.id, task_key="mod.dup", dynamic_key="3")
    assert (twice.created, twice.result.decision) == (False, S.DECISION_ABORT)


def test_a_client_chosen_id_is_the_runs_id_and_a_resend_returns_it(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    chosen = str(uuid.uuid4())
    first = _start(api, flow_run_id=run.id, task_key="mod.chosen", task_run_id=chosen.upper())
    assert (first.created, first.task_run.id) == (True, chosen)  # stored in canonical form
    assert api.task_runs.GetTaskRun(T.GetTaskRunRequest(task_run_id=chosen)).task_run.id == chosen
    resent = api.task_runs.CreateTaskRun(
        T.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="mod.chosen", dynamic_key="0", task_run_id=chosen
        )
    )
    assert (resent.created, resent.task_run.id) == (False, chosen)
    # Outside any flow a resend with the same id is the same run too (not a second one).
    loose_id = str(uuid.uuid4())
    loose = _start(api, task_key="mod.loose-chosen", task_run_id=loose_id)
    again = _start(api, task_key="mod.loose-chosen", task_run_id=loose_id)
    assert (loose.created, again.created) == (True, False)
    assert loose.task_run.id == again.task_run.id == loose_id
    assert again.result.decision == S.DECISION_ABORT  # it already runs


def test_a_client_chosen_id_of_another_run_is_already_exists(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    taken = _start(api, flow_run_id=run.id, task_key="mod.taken").task_run.id
    for fields in (
        {"flow_run_id": run.id, "task_key": "mod.taken", "dynamic_key": "1"},
        {"flow_run_id": run.id, "task_key": "mod.other", "dynamic_key": "0"},
        {"task_key": "mod.taken", "dynamic_key": "0"},  # the same call, but outside the flow
    ):
        with pytest.raises(grpc.RpcError) as caught:
            api.task_runs.CreateTaskRun(T.CreateTaskRunRequest(task_run_id=taken, **fields))  # type: ignore[arg-type]
        details = error_details(caught.value)
        assert (details.code, details.reason) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "TASK_RUN_ALREADY_EXISTS",
        )
        assert taken in details.message
    # Nothing was created by the refused calls.
    listed = api.task_runs.ListTaskRuns(
        T.ListTaskRunsRequest(filter=T.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert [t.id for t in listed] == [taken]


def test_the_same_call_with_another_chosen_id_returns_the_existing_run(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    first = _start(api, flow_run_id=run.id, task_key="mod.twice", task_run_id=str(uuid.uuid4()))
    second = _start(api, flow_run_id=run.id, task_key="mod.twice", task_run_id=str(uuid.uuid4()))
    assert (second.created, second.task_run.id) == (False, first.task_run.id)


def test_retries_follow_the_delay_list_and_end_failed(api: Api) -> None:
    policy = S.RunPolicy(retries=2, retry_delays=[_seconds(0), _seconds(3600)])
    task_run = _start(api, policy=policy).task_run
    failed = S.State(type=S.STATE_TYPE_FAILED, message="boom")

    first = _propose(api, task_run.id, failed)
    assert first.result.decision == S.DECISION_REJECT
    assert first.result.state.name == "AwaitingRetry"
    retrying = _propose(api, task_run.id, S.State(type=S.STATE_TYPE_RUNNING, name="Retrying"))
    assert retrying.result.decision == S.DECISION_ACCEPT
    assert retrying.task_run.run_count == 2

    second = _propose(api, task_run.id, failed)
    assert second.result.state.name == "AwaitingRetry"
    delay = (
        second.result.state.scheduled_time.ToSeconds() - second.result.state.create_time.ToSeconds()
    )
    assert 3599 <= delay <= 3601  # the list's second entry
    early = _propose(api, task_run.id, S.State(type=S.STATE_TYPE_RUNNING, name="Retrying"))
    assert early.result.decision == S.DECISION_WAIT
    assert early.result.wait.ToSeconds() > 3500


def test_no_retries_left_means_failed(api: Api) -> None:
    task_run = _start(api, policy=S.RunPolicy(retries=1)).task_run
    assert (
        _propose(api, task_run.id, S.State(type=S.STATE_TYPE_FAILED)).result.state.name
        == "AwaitingRetry"
    )
    assert (
        _propose(api, task_run.id, S.State(type=S.STATE_TYPE_RUNNING)).result.decision
        == S.DECISION_ACCEPT
    )
    final = _propose(api, task_run.id, S.State(type=S.STATE_TYPE_FAILED))
    assert (final.result.decision, final.task_run.state.type) == (
        S.DECISION_ACCEPT,
        S.STATE_TYPE_FAILED,
    )
    again = _propose(api, task_run.id, S.State(type=S.STATE_TYPE_RUNNING))
    assert again.result.decision == S.DECISION_REJECT  # final states stay final


def test_jitter_is_applied_by_the_service_within_its_bounds(api: Api) -> None:
    policy = S.RunPolicy(retries=1, retry_delay=_seconds(1000), retry_jitter_factor=0.5)
    delays = set()
    for _ in range(6):
        task_run = _start(api, policy=policy).task_run
        state = _propose(api, task_run.id, S.State(type=S.STATE_TYPE_FAILED)).result.state
        delay = state.scheduled_time.ToMicroseconds() - state.create_time.ToMicroseconds()
        assert 500e6 <= delay <= 1500e6
        delays.add(delay)
    assert len(delays) > 1  # drawn per retry, not a constant


def test_a_cache_hit_is_seen_from_a_second_connection(server: ServerProcess) -> None:
    key = f"cache-{uuid.uuid4().hex}"
    with server.channel() as one, server.channel() as two:
        first, second = Api(one), Api(two)
        producer = _start(first, cache_key=key).task_run
        _complete(first, producer.id, '{"answer": 7}')

        hit = _start(second, cache_key=key)
        assert hit.result.decision == S.DECISION_REJECT
        assert hit.task_run.state.type == S.STATE_TYPE_COMPLETED
        assert hit.task_run.state.name == "Cached"
        assert hit.task_run.state.result.json == '{"answer": 7}'
        assert producer.id in hit.result.reason
        assert hit.task_run.run_count == 0  # its code never ran

        # A key given with the RUNNING proposal (computed just before running) hits as well.
        late = second.task_runs.CreateTaskRun(
            T.CreateTaskRunRequest(task_key="mod.late", dynamic_key="0")
        ).task_run
        running = _propose(second, late.id, S.State(type=S.STATE_TYPE_RUNNING), cache_key=key)
        assert running.task_run.state.name == "Cached"
        assert running.task_run.cache_key == key


def test_an_expired_entry_is_no_hit_and_refresh_bypasses_a_valid_one(api: Api) -> None:
    key = f"cache-{uuid.uuid4().hex}"
    past = timestamp_pb2.Timestamp(seconds=1)
    expired = _start(api, cache_key=key, cache_expiration_time=past).task_run
    _complete(api, expired.id, "1")
    miss = _start(api, cache_key=key)
    assert miss.result.decision == S.DECISION_ACCEPT  # the only entry expired: it runs
    _complete(api, miss.task_run.id, "2")

    hit = _start(api, cache_key=key)
    assert hit.task_run.state.result.json == "2"
    refreshed = _start(api, cache_key=key, refresh_cache=True)
    assert refreshed.result.decision == S.DECISION_ACCEPT
    _complete(api, refreshed.task_run.id, "3")
    assert _start(api, cache_key=key).task_run.state.result.json == "3"  # the newest entry


def test_a_failed_run_is_no_cache_entry(api: Api) -> None:
    key = f"cache-{uuid.uuid4().hex}"
    failed = _start(api, cache_key=key).task_run
    _propose(api, failed.id, S.State(type=S.STATE_TYPE_FAILED))
    assert _start(api, cache_key=key).result.decision == S.DECISION_ACCEPT


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"flow_run_id": str(uuid.uuid4())}, grpc.StatusCode.NOT_FOUND, ""),
        ({"flow_run_id": "not-a-uuid"}, grpc.StatusCode.INVALID_ARGUMENT, "flow_run_id"),
        ({"task_key": ""}, grpc.StatusCode.INVALID_ARGUMENT, "task_key"),
        ({"task_run_id": "not-a-uuid"}, grpc.StatusCode.INVALID_ARGUMENT, "task_run_id"),
        ({"state": S.State(type=99)}, grpc.StatusCode.INVALID_ARGUMENT, "state.type"),
        (
            {"state": S.State(type=S.STATE_TYPE_SCHEDULED), "start": True},
            grpc.StatusCode.INVALID_ARGUMENT,
            "start",
        ),
        ({"cache_key": "a\x00b"}, grpc.StatusCode.INVALID_ARGUMENT, "cache_key"),
        (
            {"policy": S.RunPolicy(retry_jitter_factor=-1)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "policy.retry_jitter_factor",
        ),
        (
            {"policy": S.RunPolicy(retry_delays=[_seconds(1), _seconds(-1)])},
            grpc.StatusCode.INVALID_ARGUMENT,
            "policy.retry_delays[1]",
        ),
        (
            {"cache_expiration_time": timestamp_pb2.Timestamp(seconds=-(10**12))},
            grpc.StatusCode.INVALID_ARGUMENT,
            "cache_expiration_time",
        ),
    ],
)
def test_bad_task_input_gets_a_clear_error(
    api: Api, fields: dict[str, object], code: grpc.StatusCode, field: str
) -> None:
    request = {"task_key": "mod.bad", "dynamic_key": "0", **fields}
    with pytest.raises(grpc.RpcError) as caught:
        api.task_runs.CreateTaskRun(T.CreateTaskRunRequest(**request))  # type: ignore[arg-type]
    details = error_details(caught.value)
    assert details.code == code, details.message
    if field:
        assert details.fields == [field]
    else:
        assert details.reason == "FLOW_RUN_NOT_FOUND"


def test_a_malformed_task_state_is_invalid_argument(api: Api) -> None:
    task_run = _start(api).task_run
    for request, field in (
        (T.SetTaskRunStateRequest(task_run_id=task_run.id), "state"),
        (T.SetTaskRunStateRequest(task_run_id=task_run.id, state=S.State(type=42)), "state.type"),
        (
            T.SetTaskRunStateRequest(
                task_run_id=task_run.id,
                state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="{nope")),
            ),
            "state.result.json",
        ),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            api.task_runs.SetTaskRunState(request)
        details = error_details(caught.value)
        assert (details.code, details.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    with pytest.raises(grpc.RpcError) as missing:
        _propose(api, str(uuid.uuid4()), S.State(type=S.STATE_TYPE_RUNNING))
    assert error_details(missing.value).code == grpc.StatusCode.NOT_FOUND


def test_pipelined_task_proposals_are_stored_before_the_flows_final_state(api: Api) -> None:
    """The engine sends each task's end without waiting; the flow's end still comes after."""
    run = api.new_run(api.new_flow().id)
    stream = EngineStream(api)
    assert (
        stream.call(
            set_flow_run_state=flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_RUNNING)
            )
        ).set_flow_run_state.result.decision
        == S.DECISION_ACCEPT
    )
    count = 200
    task_runs = []
    for index in range(count):
        answer = stream.call(
            create_task_run=T.CreateTaskRunRequest(
                flow_run_id=run.id, task_key="mod.step", dynamic_key=str(index), start=True
            )
        ).create_task_run
        assert answer.result.decision == S.DECISION_ACCEPT
        task_runs.append(answer.task_run.id)
    for index, task_run_id in enumerate(task_runs):
        stream.send(
            set_task_run_state=T.SetTaskRunStateRequest(
                task_run_id=task_run_id,
                state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json=str(index))),
            )
        )
    final = stream.send(
        set_flow_run_state=flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_COMPLETED)
        )
    )
    answers = {}
    while final not in answers:
        response = stream.receive()
        answers[response.sequence] = response
    flow_end = answers[final].set_flow_run_state
    assert flow_end.result.decision == S.DECISION_ACCEPT

    stored = api.task_runs.ListTaskRuns(
        T.ListTaskRunsRequest(page_size=1000, filter=T.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert [t.id for t in stored] == task_runs
    assert all(t.state.type == S.STATE_TYPE_COMPLETED for t in stored)
    assert [t.state.result.json for t in stored] == [str(i) for i in range(count)]
    flow_end_us = flow_end.flow_run.state.create_time.ToMicroseconds()
    assert max(t.state.create_time.ToMicroseconds() for t in stored) <= flow_end_us
    assert len(answers) + len(stream.close()) == count + 1


def test_a_batch_carries_a_task_start_and_end_and_each_is_answered(api: Api) -> None:
    """With a client-chosen id, a task's start and end can travel in one message."""
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    stream = EngineStream(api)
    task_run_id = str(uuid.uuid4())
    inner = [
        engine_pb2.ConnectRequest(
            sequence=10,
            create_task_run=T.CreateTaskRunRequest(
                flow_run_id=run.id,
                task_key="mod.batched",
                dynamic_key="0",
                start=True,
                task_run_id=task_run_id,
            ),
        ),
        engine_pb2.ConnectRequest(
            sequence=11,
            set_task_run_state=T.SetTaskRunStateRequest(
                task_run_id=task_run_id,
                state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="7")),
            ),
        ),
        engine_pb2.ConnectRequest(sequence=12, batch=engine_pb2.ConnectRequestBatch()),
        engine_pb2.ConnectRequest(
            sequence=13,
            set_flow_run_state=flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_COMPLETED)
            ),
        ),
    ]
    stream.send_raw(engine_pb2.ConnectRequest(batch=engine_pb2.ConnectRequestBatch(requests=inner)))
    answers: dict[int, engine_pb2.ConnectResponse] = {}
    while len(answers) < 4:
        response = stream.receive()
        # The client sent a batch, so answers ready together may come as one too.
        for answer in response.batch.responses if response.HasField("batch") else [response]:
            answers[answer.sequence] = answer
    assert answers[10].create_task_run.task_run.id == task_run_id
    assert answers[11].set_task_run_state.result.decision == S.DECISION_ACCEPT
    assert answers[12].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]  # no nesting
    assert answers[13].set_flow_run_state.result.decision == S.DECISION_ACCEPT
    stored = api.task_runs.GetTaskRun(T.GetTaskRunRequest(task_run_id=task_run_id)).task_run
    assert (stored.state.type, stored.state.result.json) == (S.STATE_TYPE_COMPLETED, "7")
    assert stream.close() == []


def _batched_answers(
    stream: EngineStream, requests: list[engine_pb2.ConnectRequest]
) -> dict[int, engine_pb2.ConnectResponse]:
    """Send ``requests`` as one batch message; every answer, by sequence."""
    stream.send_raw(
        engine_pb2.ConnectRequest(batch=engine_pb2.ConnectRequestBatch(requests=requests))
    )
    answers: dict[int, engine_pb2.ConnectResponse] = {}
    while len(answers) < len(requests):
        response = stream.receive()
        for answer in response.batch.responses if response.HasField("batch") else [response]:
            answers[answer.sequence] = answer
    return answers


def _assert_history_and_gapless_events(
    api: Api, task_run_id: str, types: list[int], flow_run_id: str
) -> None:
    """The task run's history is ``types``, and its flow run's events are numbered without
    gaps or repeats."""
    history = api.task_runs.ListTaskRunStates(T.ListTaskRunStatesRequest(task_run_id=task_run_id))
    assert [state.type for state in history.states] == types
    events = api.flow_runs.ListFlowRunEvents(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=flow_run_id, page_size=1000)
    ).events
    sequences = [event.sequence for event in events]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


def test_the_ends_of_one_batch_are_stored_together_and_each_answered_as_alone(
    api: Api,
) -> None:
    """Neighbouring COMPLETED ends in one batch go to the database in one call; what is not a
    plain end among them (a replay, an unknown run, a run named twice, a failure, a run that
    already ended) is answered exactly as it would be on its own, and every run's order holds."""
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    stream = EngineStream(api)
    started = [
        stream.call(
            create_task_run=T.CreateTaskRunRequest(
                flow_run_id=run.id, task_key="mod.end", dynamic_key=str(index), start=True
            )
        ).create_task_run.task_run.id
        for index in range(6)
    ]
    done = S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="1"))
    replayed = str(uuid.uuid4())
    first = stream.call(
        set_task_run_state=T.SetTaskRunStateRequest(
            task_run_id=started[0], state=done, transition_id=replayed
        )
    ).set_task_run_state
    assert first.result.decision == S.DECISION_ACCEPT
    unknown = str(uuid.uuid4())

    def end(sequence: int, task_run_id: str, **fields: Any) -> engine_pb2.ConnectRequest:
        fields.setdefault("state", done)
        request = T.SetTaskRunStateRequest(task_run_id=task_run_id, **fields)
        return engine_pb2.ConnectRequest(sequence=sequence, set_task_run_state=request)

    failed = S.State(type=S.STATE_TYPE_FAILED, message="boom")
    answers = _batched_answers(
        stream,
        [
            end(1, started[1], transition_id=str(uuid.uuid4())),
            end(2, started[0], transition_id=replayed),  # a resent end: its stored answer
            end(3, unknown),
            end(4, started[2]),
            end(5, started[3], state=failed),  # not an end of the plain kind: alone
            end(6, started[4]),
            end(7, started[4]),  # named twice: the second finds it ended
            end(8, started[5], transition_id="not-a-uuid"),  # fails its check alone
        ],
    )

    accepted = (1, 4, 6)
    for sequence in accepted:
        assert answers[sequence].set_task_run_state.result.decision == S.DECISION_ACCEPT
        assert answers[sequence].set_task_run_state.task_run.state.type == S.STATE_TYPE_COMPLETED
    assert answers[2].set_task_run_state == first
    assert answers[3].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert unknown in answers[3].error.message
    assert answers[5].set_task_run_state.task_run.state.type == S.STATE_TYPE_FAILED
    assert answers[7].set_task_run_state.result.decision != S.DECISION_ACCEPT
    assert answers[8].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    for index, expected in enumerate(
        [S.STATE_TYPE_COMPLETED] * 3
        + [S.STATE_TYPE_FAILED, S.STATE_TYPE_COMPLETED, S.STATE_TYPE_RUNNING]
    ):
        stored = api.task_runs.GetTaskRun(T.GetTaskRunRequest(task_run_id=started[index]))
        assert stored.task_run.state.type == expected, index
    # Each end is one history row after PENDING and RUNNING, and one event of the flow run,
    # numbered without gaps or repeats.
    _assert_history_and_gapless_events(
        api,
        started[4],
        [S.STATE_TYPE_PENDING, S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED],
        run.id,
    )
    assert stream.close() == []


def test_the_starts_of_one_batch_are_stored_together_and_each_answered_as_alone(
    api: Api,
) -> None:
    """Neighbouring create-and-starts in one batch go to the database in one call; a resent
    create, a second create of an existing call, a start with tags and a bad request are each
    answered as on their own."""
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    stream = EngineStream(api)
    resent = str(uuid.uuid4())

    def start(sequence: int, dynamic_key: str, **fields: Any) -> engine_pb2.ConnectRequest:
        request = T.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="mod.start", dynamic_key=dynamic_key, start=True, **fields
        )
        return engine_pb2.ConnectRequest(sequence=sequence, create_task_run=request)

    first = _batched_answers(stream, [start(1, "a", request_id=resent), start(2, "b")])
    assert first[1].create_task_run.created and first[2].create_task_run.created
    chosen = str(uuid.uuid4())
    answers = _batched_answers(
        stream,
        [
            start(3, "c", task_run_id=chosen),
            start(4, "a", request_id=resent),  # resent: the stored answer
            start(5, "b"),  # the same call again: that run, not a new one
            start(6, "d", tags=["t"]),  # may wait for a tag's slot: the general way
            start(7, "e", task_run_id="not-a-uuid"),  # fails its check alone
            start(8, "f"),
            start(9, "c"),  # a key taken earlier in this very batch
        ],
    )

    fresh = (3, 6, 8)
    for sequence in fresh:
        answer = answers[sequence].create_task_run
        assert answer.created, sequence
        assert answer.result.decision == S.DECISION_ACCEPT
        assert answer.task_run.state.type == S.STATE_TYPE_RUNNING
    assert answers[3].create_task_run.task_run.id == chosen
    assert answers[4].create_task_run == first[1].create_task_run
    assert not answers[5].create_task_run.created
    assert answers[5].create_task_run.task_run.id == first[2].create_task_run.task_run.id
    assert answers[7].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not answers[9].create_task_run.created
    assert answers[9].create_task_run.task_run.id == chosen
    stored = api.task_runs.ListTaskRuns(
        T.ListTaskRunsRequest(page_size=100, filter=T.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert sorted(t.dynamic_key for t in stored) == ["a", "b", "c", "d", "f"]
    _assert_history_and_gapless_events(
        api, chosen, [S.STATE_TYPE_PENDING, S.STATE_TYPE_RUNNING], run.id
    )
    assert stream.close() == []


def test_an_end_right_behind_a_start_that_may_wait_for_a_slot_is_applied_after_it(
    api: Api,
) -> None:
    """A start with tags takes the stream's general way (it may wait for a tag's slot); the
    end sent in the same message takes the lean way, yet must not overtake it."""
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    stream = EngineStream(api)
    ids = [str(uuid.uuid4()) for _ in range(20)]
    inner = []
    for index, task_run_id in enumerate(ids):
        inner.append(
            engine_pb2.ConnectRequest(
                sequence=2 * index + 1,
                create_task_run=T.CreateTaskRunRequest(
                    flow_run_id=run.id,
                    task_key="mod.tagged",
                    dynamic_key=str(index),
                    start=True,
                    task_run_id=task_run_id,
                    tags=["no-limit-here"],
                ),
            )
        )
        inner.append(
            engine_pb2.ConnectRequest(
                sequence=2 * index + 2,
                set_task_run_state=T.SetTaskRunStateRequest(
                    task_run_id=task_run_id,
                    state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="1")),
                ),
            )
        )
    stream.send_raw(engine_pb2.ConnectRequest(batch=engine_pb2.ConnectRequestBatch(requests=inner)))
    answers: dict[int, engine_pb2.ConnectResponse] = {}
    while len(answers) < len(inner):
        response = stream.receive()
        for answer in response.batch.responses if response.HasField("batch") else [response]:
            answers[answer.sequence] = answer
    for sequence in range(1, len(inner) + 1):
        answer = answers[sequence]
        assert answer.WhichOneof("outcome") != "error", answer
        outcome = answer.create_task_run if sequence % 2 else answer.set_task_run_state
        assert outcome.result.decision == S.DECISION_ACCEPT
    stored = api.task_runs.ListTaskRuns(
        T.ListTaskRunsRequest(filter=T.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert sorted(t.id for t in stored) == sorted(ids)
    assert {t.state.type for t in stored} == {S.STATE_TYPE_COMPLETED}
    assert stream.close() == []


def test_more_operations_than_a_stream_runs_at_once_are_all_answered(api: Api) -> None:
    """Past the stream's in-flight limit the server stops reading until answers go out, then
    reads on: every operation is answered, whichever way (general or lean) it took."""
    from headwater_server.servicers.engine import MAX_IN_FLIGHT

    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    stream = EngineStream(api)
    count = MAX_IN_FLIGHT + 200
    inner = [
        engine_pb2.ConnectRequest(
            sequence=index + 1,
            create_task_run=T.CreateTaskRunRequest(
                flow_run_id=run.id,
                task_key="mod.many",
                dynamic_key=str(index),
                start=True,
                # Tagged ones take the general way (a task each), the others the lean one.
                tags=["no-limit-here"] if index % 2 else [],
            ),
        )
        for index in range(count)
    ]
    for start in range(0, count, 256):
        stream.send_raw(
            engine_pb2.ConnectRequest(
                batch=engine_pb2.ConnectRequestBatch(requests=inner[start : start + 256])
            )
        )
    answers: dict[int, engine_pb2.ConnectResponse] = {}
    while len(answers) < count:
        response = stream.receive()
        for answer in response.batch.responses if response.HasField("batch") else [response]:
            answers[answer.sequence] = answer
    assert sorted(answers) == list(range(1, count + 1))
    assert {a.create_task_run.result.decision for a in answers.values()} == {S.DECISION_ACCEPT}
    assert stream.close() == []


def test_a_retry_sent_right_behind_a_lean_failure_is_applied_after_it(api: Api) -> None:
    """A failure takes the lean way, the retry's RUNNING the general one; sent in one message,
    the RUNNING must still see the failure's AwaitingRetry (on PostgreSQL the two ways run
    on different threads), and the flow's end comes after all of them."""
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    stream = EngineStream(api)
    inner = []
    tasks = 10
    for index in range(tasks):
        task_run_id = str(uuid.uuid4())
        base = 4 * index
        inner += [
            engine_pb2.ConnectRequest(
                sequence=base + 1,
                create_task_run=T.CreateTaskRunRequest(
                    flow_run_id=run.id,
                    task_key="mod.flaky",
                    dynamic_key=str(index),
                    start=True,
                    task_run_id=task_run_id,
                    policy=S.RunPolicy(retries=1),
                ),
            ),
            engine_pb2.ConnectRequest(
                sequence=base + 2,
                set_task_run_state=T.SetTaskRunStateRequest(
                    task_run_id=task_run_id,
                    state=S.State(type=S.STATE_TYPE_FAILED, message="boom"),
                ),
            ),
            engine_pb2.ConnectRequest(
                sequence=base + 3,
                set_task_run_state=T.SetTaskRunStateRequest(
                    task_run_id=task_run_id,
                    state=S.State(type=S.STATE_TYPE_RUNNING, name="Retrying"),
                ),
            ),
            engine_pb2.ConnectRequest(
                sequence=base + 4,
                set_task_run_state=T.SetTaskRunStateRequest(
                    task_run_id=task_run_id,
                    state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="1")),
                ),
            ),
        ]
    final = 4 * tasks + 1
    inner.append(
        engine_pb2.ConnectRequest(
            sequence=final,
            set_flow_run_state=flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_COMPLETED)
            ),
        )
    )
    stream.send_raw(engine_pb2.ConnectRequest(batch=engine_pb2.ConnectRequestBatch(requests=inner)))
    answers: dict[int, engine_pb2.ConnectResponse] = {}
    while len(answers) < len(inner):
        response = stream.receive()
        for answer in response.batch.responses if response.HasField("batch") else [response]:
            answers[answer.sequence] = answer
    for index in range(tasks):
        base = 4 * index
        failed = answers[base + 2].set_task_run_state
        assert (failed.result.decision, failed.result.state.name) == (
            S.DECISION_REJECT,
            "AwaitingRetry",
        )
        retried = answers[base + 3].set_task_run_state
        assert retried.result.decision == S.DECISION_ACCEPT, retried.result.reason
        assert retried.task_run.run_count == 2
        done = answers[base + 4].set_task_run_state
        assert done.result.decision == S.DECISION_ACCEPT, done.result.reason
    flow_end = answers[final].set_flow_run_state
    assert flow_end.result.decision == S.DECISION_ACCEPT
    stored = api.task_runs.ListTaskRuns(
        T.ListTaskRunsRequest(filter=T.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert {t.state.type for t in stored} == {S.STATE_TYPE_COMPLETED}
    flow_end_us = flow_end.flow_run.state.create_time.ToMicroseconds()
    assert max(t.state.create_time.ToMicroseconds() for t in stored) <= flow_end_us
    assert stream.close() == []


def test_the_server_says_it_takes_batches(api: Api) -> None:
    call = api.engine.Connect(iter(()))
    assert ("headwater-engine-batch", "1") in tuple(call.initial_metadata())
    assert list(call) == []


def test_task_errors_on_the_stream_leave_it_open(api: Api) -> None:
    stream = EngineStream(api)
    unknown = stream.call(
        create_task_run=T.CreateTaskRunRequest(
            flow_run_id=str(uuid.uuid4()), task_key="mod.x", dynamic_key="0", start=True
        )
    )
    assert (unknown.error.code, unknown.error.reason) == (
        grpc.StatusCode.NOT_FOUND.value[0],
        "FLOW_RUN_NOT_FOUND",
    )
    bad = stream.call(set_task_run_state=T.SetTaskRunStateRequest(task_run_id=str(uuid.uuid4())))
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    started = stream.call(
        create_task_run=T.CreateTaskRunRequest(task_key="mod.x", dynamic_key="0", start=True)
    )
    assert started.create_task_run.task_run.state.type == S.STATE_TYPE_RUNNING
    assert stream.close() == []


def test_task_run_states_are_events_of_their_flow_run(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    watch = api.flow_runs.WatchFlowRun(flow_runs_pb2.WatchFlowRunRequest(flow_run_id=run.id))
    assert next(watch).WhichOneof("kind") == "snapshot"
    kinds = [next(watch).WhichOneof("kind") for _ in range(3)]
    assert kinds == ["event", "event", "caught_up"]

    started = _start(api, flow_run_id=run.id, task_key="mod.watched").task_run
    _complete(api, started.id, "5")
    _start(api, task_key="mod.outside")  # no flow run: no event anywhere
    api.propose(run.id, S.STATE_TYPE_COMPLETED)

    live = [message.event for message in watch]  # ends after the flow's final state
    assert [e.sequence for e in live] == [3, 4, 5, 6]
    task_events = [e.task_run_state_changed for e in live[:3]]
    assert [(t.task_run_id, t.task_run_name) for t in task_events] == [
        (started.id, started.name)
    ] * 3
    assert [t.state.type for t in task_events] == [
        S.STATE_TYPE_PENDING,
        S.STATE_TYPE_RUNNING,
        S.STATE_TYPE_COMPLETED,
    ]
    assert task_events[2].state.result.json == "5"
    assert live[3].state_changed.type == S.STATE_TYPE_COMPLETED

    # The stored log reads the same, and resumes from any sequence without a gap.
    assert [e.sequence for e in api.events(run.id)] == [1, 2, 3, 4, 5, 6]
    assert [e.WhichOneof("kind") for e in api.events(run.id, after=4)] == [
        "task_run_state_changed",
        "state_changed",
    ]


def test_a_watch_of_the_flow_runs_own_states_skips_its_task_runs(api: Api) -> None:
    """What an engine's cancellation watch asks for: task events neither arrive nor wake it."""
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    watch = api.flow_runs.WatchFlowRun(
        flow_runs_pb2.WatchFlowRunRequest(flow_run_id=run.id, flow_run_states_only=True),
        timeout=30,
    )
    assert [next(watch).WhichOneof("kind") for _ in range(4)] == [
        "snapshot",
        "event",
        "event",
        "caught_up",
    ]
    for index in range(3):
        task_run = _start(api, flow_run_id=run.id, task_key="mod.quiet", dynamic_key=str(index))
        _complete(api, task_run.task_run.id, "1")
    api.propose(run.id, S.STATE_TYPE_COMPLETED)
    live = [message.event for message in watch]  # ends after the flow's final state
    assert [e.WhichOneof("kind") for e in live] == ["state_changed"]
    assert live[0].state_changed.type == S.STATE_TYPE_COMPLETED
    assert live[0].sequence == 3 + 3 * 3  # numbered among the 9 task events it skipped

    everything = api.flow_runs.ListFlowRunEvents(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id)
    )
    own = api.flow_runs.ListFlowRunEvents(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id, flow_run_states_only=True)
    )
    assert len(everything.events) == 3 + 9
    assert [e.sequence for e in own.events] == [1, 2, 12]
    assert own.last_sequence == everything.last_sequence == 12
    assert own.finished


def test_a_deleted_task_runs_events_leave_the_log_and_watches_still_end(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    api.propose(run.id, S.STATE_TYPE_COMPLETED)
    task_run = _start(api, flow_run_id=run.id, task_key="mod.gone").task_run  # events 4 and 5
    api.task_runs.DeleteTaskRun(T.DeleteTaskRunRequest(task_run_id=task_run.id))

    assert [e.sequence for e in api.events(run.id)] == [1, 2, 3]
    listed = api.flow_runs.ListFlowRunEvents(
        flow_runs_pb2.ListFlowRunEventsRequest(
            flow_run_id=run.id, after_sequence=3, wait=duration_pb2.Duration(seconds=5)
        ),
        timeout=20,
    )
    assert (list(listed.events), listed.last_sequence, listed.finished) == ([], 5, True)
    watch = api.flow_runs.WatchFlowRun(
        flow_runs_pb2.WatchFlowRunRequest(flow_run_id=run.id), timeout=20
    )
    kinds = [message.WhichOneof("kind") for message in watch]  # ends: the run is finished
    assert kinds == ["snapshot", "event", "event", "event", "caught_up"]

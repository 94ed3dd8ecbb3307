"""The flow run API end to end over a real server subprocess, on SQLite and on PostgreSQL.

Covers the life of a run through the unary calls and through the engine stream, the stored
event history, WatchFlowRun, the ListFlowRunEvents long poll, restarts, cancellation, logs and
pagination.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from headwater.v1 import flow_runs_pb2, logs_pb2, states_pb2, task_runs_pb2
from rpc_helpers import Api, EngineStream, error_details
from server_harness import DATABASES, ServerFactory, ServerProcess, database_url_for

pytestmark = pytest.mark.integration

S = states_pb2
FR = flow_runs_pb2
ACCEPT = S.DECISION_ACCEPT


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _types(events: list[FR.FlowRunEvent]) -> list[int]:
    return [event.state_changed.type for event in events]


def test_a_run_goes_pending_running_completed_through_unary_calls(api: Api) -> None:
    flow = api.new_flow()
    run = api.new_run(flow.id, parameters_json='{"x": 1, "big": 12345678901234567890}')
    assert run.state.type == S.STATE_TYPE_PENDING
    assert run.flow_name == flow.name
    assert run.last_sequence == 1

    running = api.propose(run.id, S.STATE_TYPE_RUNNING)
    assert running.result.decision == ACCEPT
    assert running.result.state.name == "Running"
    assert running.flow_run.run_count == 1

    completed = api.flow_runs.SetFlowRunState(
        FR.SetFlowRunStateRequest(
            flow_run_id=run.id,
            state=S.State(type=S.STATE_TYPE_COMPLETED, result=S.StateResult(json="42")),
            transition_id=str(uuid.uuid4()),
        )
    )
    assert completed.result.decision == ACCEPT
    assert completed.flow_run.state.type == S.STATE_TYPE_COMPLETED

    stored = api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=run.id)).flow_run
    assert stored.parameters_json == run.parameters_json
    assert stored.last_sequence == 3

    history = api.flow_runs.ListFlowRunEvents(FR.ListFlowRunEventsRequest(flow_run_id=run.id))
    assert [event.sequence for event in history.events] == [1, 2, 3]
    assert _types(list(history.events)) == [
        S.STATE_TYPE_PENDING,
        S.STATE_TYPE_RUNNING,
        S.STATE_TYPE_COMPLETED,
    ]
    assert history.events[2].state_changed.result.json == "42"
    assert history.last_sequence == 3
    assert history.finished


def test_a_retried_proposal_is_applied_once(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    request = FR.SetFlowRunStateRequest(
        flow_run_id=run.id,
        state=S.State(type=S.STATE_TYPE_RUNNING),
        transition_id=str(uuid.uuid4()),
    )
    first = api.flow_runs.SetFlowRunState(request)
    second = api.flow_runs.SetFlowRunState(request)
    assert first == second
    assert [event.sequence for event in api.events(run.id)] == [1, 2]


def test_a_run_goes_through_the_engine_stream_in_order(api: Api) -> None:
    flow_name = f"engine-{uuid.uuid4().hex[:8]}"
    stream = EngineStream(api)
    created = stream.call(create_flow_run=FR.CreateFlowRunRequest(flow_name=flow_name))
    assert created.WhichOneof("outcome") == "create_flow_run", created
    run_id = created.create_flow_run.flow_run.id

    # Pipelined without waiting: the server must apply them in the order sent.
    sequences = [
        stream.send(
            set_flow_run_state=FR.SetFlowRunStateRequest(
                flow_run_id=run_id, state=S.State(type=state_type), transition_id=str(uuid.uuid4())
            )
        )
        for state_type in (S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED)
    ]
    answers = {answer.sequence: answer for answer in (stream.receive(), stream.receive())}
    assert sorted(answers) == sequences
    for sequence in sequences:
        assert answers[sequence].set_flow_run_state.result.decision == ACCEPT, answers[sequence]

    got = stream.call(get_flow_run=FR.GetFlowRunRequest(flow_run_id=run_id))
    assert got.get_flow_run.flow_run.state.type == S.STATE_TYPE_COMPLETED
    assert stream.close() == []

    assert _types(api.events(run_id)) == [
        S.STATE_TYPE_PENDING,
        S.STATE_TYPE_RUNNING,
        S.STATE_TYPE_COMPLETED,
    ]


def test_the_engine_stream_answers_errors_and_stays_open(api: Api) -> None:
    stream = EngineStream(api)
    bad = stream.call(get_flow_run=FR.GetFlowRunRequest(flow_run_id="not-a-uuid"))
    assert bad.WhichOneof("outcome") == "error"
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "flow_run_id" in bad.error.message

    missing = stream.call(get_flow_run=FR.GetFlowRunRequest(flow_run_id=str(uuid.uuid4())))
    assert missing.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert missing.error.reason == "FLOW_RUN_NOT_FOUND"

    run = api.new_run(api.new_flow().id)
    ok = stream.call(get_flow_run=FR.GetFlowRunRequest(flow_run_id=run.id))
    assert ok.get_flow_run.flow_run.id == run.id
    assert stream.close() == []


def test_the_engine_stream_runs_many_runs_concurrently(api: Api) -> None:
    flow = api.new_flow()
    stream = EngineStream(api)
    run_ids = []
    for _ in range(20):
        stream.send(create_flow_run=FR.CreateFlowRunRequest(flow_id=flow.id))
    for _ in range(20):
        run_ids.append(stream.receive().create_flow_run.flow_run.id)
    for state_type in (S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED):
        for run_id in run_ids:
            stream.send(
                set_flow_run_state=FR.SetFlowRunStateRequest(
                    flow_run_id=run_id, state=S.State(type=state_type)
                )
            )
    answers = [stream.receive() for _ in range(40)]
    assert all(a.set_flow_run_state.result.decision == ACCEPT for a in answers), answers
    stream.close()
    for run_id in run_ids:
        assert [e.sequence for e in api.events(run_id)] == [1, 2, 3]


def test_task_runs_through_the_stream_and_unary_calls(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    stream = EngineStream(api)
    created = stream.call(
        create_task_run=task_runs_pb2.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="mod.extract", dynamic_key="0"
        )
    )
    task_run = created.create_task_run.task_run
    assert task_run.state.type == S.STATE_TYPE_PENDING
    running = stream.call(
        set_task_run_state=task_runs_pb2.SetTaskRunStateRequest(
            task_run_id=task_run.id, state=S.State(type=S.STATE_TYPE_RUNNING)
        )
    )
    assert running.set_task_run_state.result.decision == ACCEPT
    stream.close()

    again = api.task_runs.CreateTaskRun(
        task_runs_pb2.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="mod.extract", dynamic_key="0"
        )
    )
    assert (again.created, again.task_run.id) == (False, task_run.id)  # as Prefect: the same run

    done = api.task_runs.SetTaskRunState(
        task_runs_pb2.SetTaskRunStateRequest(
            task_run_id=task_run.id, state=S.State(type=S.STATE_TYPE_COMPLETED)
        )
    )
    assert done.task_run.state.type == S.STATE_TYPE_COMPLETED
    listed = api.task_runs.ListTaskRuns(
        task_runs_pb2.ListTaskRunsRequest(filter=task_runs_pb2.TaskRunFilter(flow_run_id=run.id))
    )
    assert [t.id for t in listed.task_runs] == [task_run.id]


def test_watch_sends_snapshot_replay_caught_up_live_and_ends_after_terminal(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)

    received: list[FR.WatchFlowRunResponse] = []
    caught_up = threading.Event()
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            for message in api.flow_runs.WatchFlowRun(
                FR.WatchFlowRunRequest(flow_run_id=run.id), timeout=30
            ):
                received.append(message)
                if message.HasField("caught_up"):
                    caught_up.set()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
            caught_up.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert caught_up.wait(10)
    api.propose(run.id, S.STATE_TYPE_COMPLETED)
    watcher.join(15)
    assert not watcher.is_alive(), "the watch did not end after the terminal state"
    assert not failures, failures

    kinds = [message.WhichOneof("kind") for message in received]
    assert kinds == ["snapshot", "event", "event", "caught_up", "event"]
    assert received[0].snapshot.id == run.id
    assert [m.event.sequence for m in received if m.HasField("event")] == [1, 2, 3]
    assert received[3].caught_up.last_sequence == 2
    assert received[4].event.state_changed.type == S.STATE_TYPE_COMPLETED


def test_watch_resumes_after_a_sequence_and_ends_for_a_finished_run(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    api.propose(run.id, S.STATE_TYPE_COMPLETED)
    messages = list(
        api.flow_runs.WatchFlowRun(
            FR.WatchFlowRunRequest(flow_run_id=run.id, after_sequence=1), timeout=10
        )
    )
    kinds = [message.WhichOneof("kind") for message in messages]
    assert kinds == ["snapshot", "event", "event", "caught_up"]
    assert [m.event.sequence for m in messages[1:3]] == [2, 3]
    assert messages[3].caught_up.last_sequence == 3


def test_watch_of_an_unknown_run_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(api.flow_runs.WatchFlowRun(FR.WatchFlowRunRequest(flow_run_id=str(uuid.uuid4()))))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_long_poll_returns_when_the_run_changes(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    result: list[FR.ListFlowRunEventsResponse] = []

    def poll() -> None:
        result.append(
            api.flow_runs.ListFlowRunEvents(
                FR.ListFlowRunEventsRequest(
                    flow_run_id=run.id,
                    after_sequence=1,
                    wait=duration_pb2.Duration(seconds=30),
                ),
                timeout=40,
            )
        )

    poller = threading.Thread(target=poll)
    started = time.monotonic()
    poller.start()
    time.sleep(0.3)
    assert poller.is_alive(), "the long poll returned before anything changed"
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    poller.join(35)
    assert time.monotonic() - started < 25, "the long poll waited for its whole wait"
    assert [event.sequence for event in result[0].events] == [2]
    assert result[0].last_sequence == 2


def test_a_long_poll_with_nothing_new_returns_empty_after_its_wait(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    response = api.flow_runs.ListFlowRunEvents(
        FR.ListFlowRunEventsRequest(
            flow_run_id=run.id, after_sequence=1, wait=duration_pb2.Duration(nanos=300_000_000)
        ),
        timeout=10,
    )
    assert list(response.events) == []
    assert response.last_sequence == 1
    assert not response.finished


def test_a_long_poll_answers_before_the_callers_deadline(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    request = FR.ListFlowRunEventsRequest(
        flow_run_id=run.id, after_sequence=1, wait=duration_pb2.Duration(seconds=20)
    )
    response = api.flow_runs.ListFlowRunEvents(request, timeout=1.0)  # no DEADLINE_EXCEEDED
    assert list(response.events) == []
    no_deadline = FR.ListFlowRunEventsRequest(
        flow_run_id=run.id, after_sequence=1, wait=duration_pb2.Duration(nanos=200_000_000)
    )
    assert list(api.flow_runs.ListFlowRunEvents(no_deadline).events) == []


def test_cancel_an_idle_run_a_running_run_and_a_finished_run(api: Api) -> None:
    flow = api.new_flow()
    idle = api.new_run(flow.id)
    cancelled = api.flow_runs.CancelFlowRun(
        FR.CancelFlowRunRequest(flow_run_id=idle.id, reason="not needed")
    ).flow_run
    assert cancelled.state.type == S.STATE_TYPE_CANCELLED

    busy = api.new_run(flow.id)
    api.propose(busy.id, S.STATE_TYPE_RUNNING)
    cancelling = api.flow_runs.CancelFlowRun(FR.CancelFlowRunRequest(flow_run_id=busy.id))
    assert cancelling.flow_run.state.type == S.STATE_TYPE_CANCELLING

    with pytest.raises(grpc.RpcError) as caught:
        api.flow_runs.CancelFlowRun(FR.CancelFlowRunRequest(flow_run_id=idle.id))
    details = error_details(caught.value)
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "FLOW_RUN_ALREADY_FINISHED"


def test_update_and_delete_a_run(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    updated = api.flow_runs.UpdateFlowRun(
        FR.UpdateFlowRunRequest(
            flow_run_id=run.id,
            name="renamed",
            tags=["a", "b"],
            update_mask=field_mask_pb2.FieldMask(paths=["name", "tags"]),
        )
    ).flow_run
    assert updated.name == "renamed"
    assert list(updated.tags) == ["a", "b"]
    api.flow_runs.DeleteFlowRun(FR.DeleteFlowRunRequest(flow_run_id=run.id))
    with pytest.raises(grpc.RpcError) as caught:
        api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=run.id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_logs_round_trip_in_time_order_with_pages(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    lines = [
        logs_pb2.Log(flow_run_id=run.id, logger_name="t", level=20, message=f"line {i}")
        for i in range(5)
    ]
    for index, line in enumerate(lines):
        line.log_time.FromNanoseconds(1_700_000_000_000_000_000 + index * 1000)
    created = api.logs.CreateLogs(logs_pb2.CreateLogsRequest(logs=lines))
    assert created.created_count == 5

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = api.logs.ListLogs(
            logs_pb2.ListLogsRequest(
                page_size=2, page_token=token, filter=logs_pb2.LogFilter(flow_run_id=run.id)
            )
        )
        pages += 1
        seen.extend(log.message for log in page.logs)
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"line {i}" for i in range(5)]
    assert pages == 3


def test_flow_runs_page_newest_first_without_repeats(api: Api) -> None:
    flow = api.new_flow()
    created = [api.new_run(flow.id).id for _ in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = api.flow_runs.ListFlowRuns(
            FR.ListFlowRunsRequest(
                page_size=2, page_token=token, filter=FR.FlowRunFilter(flow_ids=[flow.id])
            )
        )
        assert len(page.flow_runs) <= 2
        seen.extend(run.id for run in page.flow_runs)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(created))


def test_flow_runs_are_listed_by_name(api: Api) -> None:
    flow = api.new_flow()
    name = f"named-{uuid.uuid4().hex[:8]}"
    named = [api.new_run(flow.id, name=name).id for _ in range(3)]
    api.new_run(flow.id, name=f"{name}-not")  # a longer name is not a match
    other = api.new_run(api.new_flow().id, name=name).id

    def listed(**where: object) -> list[str]:
        request = FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(**where))
        return [run.id for run in api.flow_runs.ListFlowRuns(request).flow_runs]

    assert listed(name=name) == [other, *reversed(named)]
    assert listed(name=name, flow_ids=[flow.id]) == list(reversed(named))
    assert listed(name=name.upper()) == []  # exact, not case-folded
    page = api.flow_runs.ListFlowRuns(
        FR.ListFlowRunsRequest(page_size=2, filter=FR.FlowRunFilter(name=name))
    )
    assert [run.id for run in page.flow_runs] == [other, named[-1]] and page.next_page_token


@pytest.mark.parametrize(
    ("value", "problem"), [("n" * 256, "at most 255"), ("bad\x00name", "NUL character")]
)
def test_a_name_filter_the_schema_cannot_hold_is_invalid(
    api: Api, value: str, problem: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.flow_runs.ListFlowRuns(FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(name=value)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter.name" in caught.value.details() and problem in caught.value.details()


@pytest.mark.parametrize("kind", DATABASES)
def test_a_restart_between_two_runs_loses_nothing(
    kind: str, make_server: ServerFactory, request: pytest.FixtureRequest
) -> None:
    server = make_server(database_url_for(kind, request))
    with server.channel() as channel:
        api = Api(channel)
        flow = api.new_flow()
        first = api.new_run(flow.id)
        api.propose(first.id, S.STATE_TYPE_RUNNING)
        api.propose(first.id, S.STATE_TYPE_COMPLETED)

    server.restart()

    with server.channel() as channel:
        api = Api(channel)
        assert [e.sequence for e in api.events(first.id)] == [1, 2, 3]
        second = api.new_run(flow.id)
        api.propose(second.id, S.STATE_TYPE_RUNNING)
        listed = api.flow_runs.ListFlowRuns(
            FR.ListFlowRunsRequest(filter=FR.FlowRunFilter(flow_ids=[flow.id]))
        )
        assert {run.id for run in listed.flow_runs} == {first.id, second.id}
    assert "Headwater server listening on" in server.output()


@pytest.mark.parametrize("kind", DATABASES)
def test_a_long_poll_sees_a_change_made_through_another_server(
    kind: str, make_server: ServerFactory, request: pytest.FixtureRequest
) -> None:
    first = make_server(database_url_for(kind, request))
    second = make_server(first.database_url)
    with first.channel() as one, second.channel() as two:
        api_one, api_two = Api(one), Api(two)
        run = api_one.new_run(api_one.new_flow().id)
        result: list[FR.ListFlowRunEventsResponse] = []
        poller = threading.Thread(
            target=lambda: result.append(
                api_one.flow_runs.ListFlowRunEvents(
                    FR.ListFlowRunEventsRequest(
                        flow_run_id=run.id,
                        after_sequence=1,
                        wait=duration_pb2.Duration(seconds=20),
                    ),
                    timeout=30,
                )
            )
        )
        poller.start()
        time.sleep(0.2)
        api_two.propose(run.id, S.STATE_TYPE_RUNNING)
        poller.join(25)
        assert [event.sequence for event in result[0].events] == [2]


def test_two_engines_racing_to_start_a_run_get_one_accept_and_one_abort(
    api: Api, server: ServerProcess
) -> None:
    run = api.new_run(api.new_flow().id)
    with server.channel() as other_channel:
        streams = [EngineStream(api), EngineStream(Api(other_channel))]
        for stream in streams:
            stream.send(
                set_flow_run_state=FR.SetFlowRunStateRequest(
                    flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_RUNNING)
                )
            )
        decisions = sorted(s.receive().set_flow_run_state.result.decision for s in streams)
        for stream in streams:
            stream.close()
    assert decisions == [S.DECISION_ACCEPT, S.DECISION_ABORT]
    stored = api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=run.id)).flow_run
    assert stored.run_count == 1


def test_a_watch_replays_more_than_one_page_of_history(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    stream = EngineStream(api)
    count = 1105  # more than the 1000 events the server reads per page
    for _ in range(count):
        stream.send(
            set_flow_run_state=FR.SetFlowRunStateRequest(
                flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_SCHEDULED), force=True
            )
        )
    answers = [stream.receive() for _ in range(count)]
    assert all(a.set_flow_run_state.result.decision == ACCEPT for a in answers)
    stream.send(
        set_flow_run_state=FR.SetFlowRunStateRequest(
            flow_run_id=run.id, state=S.State(type=S.STATE_TYPE_CANCELLED), force=True
        )
    )
    stream.receive()
    stream.close()
    last = count + 2
    messages = list(api.flow_runs.WatchFlowRun(FR.WatchFlowRunRequest(flow_run_id=run.id)))
    sequences = [m.event.sequence for m in messages if m.HasField("event")]
    assert sequences == list(range(1, last + 1))
    assert messages[-1].caught_up.last_sequence == last

    page = api.flow_runs.ListFlowRunEvents(
        FR.ListFlowRunEventsRequest(flow_run_id=run.id, after_sequence=1000, page_size=10)
    )
    assert [e.sequence for e in page.events] == list(range(1001, 1011))
    assert page.last_sequence == last
    assert not page.finished  # more events follow the returned ones


def test_a_long_poll_on_a_run_that_is_deleted_ends_with_not_found(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    outcome: list[BaseException] = []

    def poll() -> None:
        try:
            api.flow_runs.ListFlowRunEvents(
                FR.ListFlowRunEventsRequest(
                    flow_run_id=run.id, after_sequence=1, wait=duration_pb2.Duration(seconds=30)
                ),
                timeout=40,
            )
        except grpc.RpcError as exc:
            outcome.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    api.flow_runs.DeleteFlowRun(FR.DeleteFlowRunRequest(flow_run_id=run.id))
    poller.join(35)
    assert outcome and outcome[0].code() == grpc.StatusCode.NOT_FOUND


def test_several_engines_at_once_leave_gapless_histories(api: Api, server: ServerProcess) -> None:
    flow = api.new_flow()
    failures: list[BaseException] = []
    run_ids: list[list[str]] = []

    def engine() -> None:
        try:
            with server.channel() as channel:
                own = Api(channel)
                stream = EngineStream(own)
                for _ in range(15):
                    stream.send(create_flow_run=FR.CreateFlowRunRequest(flow_id=flow.id))
                ids = [stream.receive().create_flow_run.flow_run.id for _ in range(15)]
                for state_type in (S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED):
                    for run_id in ids:
                        stream.send(
                            set_flow_run_state=FR.SetFlowRunStateRequest(
                                flow_run_id=run_id,
                                state=S.State(type=state_type),
                                transition_id=str(uuid.uuid4()),
                            )
                        )
                answers = [stream.receive() for _ in range(30)]
                assert all(a.set_flow_run_state.result.decision == ACCEPT for a in answers), answers
                assert stream.close() == []
                run_ids.append(ids)
        except BaseException as exc:
            failures.append(exc)

    engines = [threading.Thread(target=engine) for _ in range(6)]
    for thread in engines:
        thread.start()
    for thread in engines:
        thread.join(60)
    assert not failures, failures
    all_ids = [run_id for ids in run_ids for run_id in ids]
    assert len(set(all_ids)) == 90
    for run_id in all_ids:
        history = api.flow_runs.ListFlowRunEvents(FR.ListFlowRunEventsRequest(flow_run_id=run_id))
        assert [e.sequence for e in history.events] == [1, 2, 3]
        assert history.finished

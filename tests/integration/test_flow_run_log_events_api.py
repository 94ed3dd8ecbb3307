"""Log lines as flow run events over real gRPC, on SQLite and on PostgreSQL: numbered in the
run's one sequence between the states they were stored among, listed by ListFlowRunEvents and
streamed live by WatchFlowRun."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest
from headwater.v1 import flow_runs_pb2, logs_pb2, states_pb2, task_runs_pb2
from rpc_helpers import Api
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

S = states_pb2
FR = flow_runs_pb2


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _log(api: Api, flow_run_id: str, *messages: str, task_run_id: str = "") -> None:
    api.logs.CreateLogs(
        logs_pb2.CreateLogsRequest(
            logs=[
                logs_pb2.Log(flow_run_id=flow_run_id, task_run_id=task_run_id, message=m)
                for m in messages
            ]
        )
    )


def _describe(event: FR.FlowRunEvent) -> str:
    kind = event.WhichOneof("kind")
    if kind == "log":
        owner = "task" if event.log.task_run_id else "flow"
        return f"{event.sequence} {owner} log {event.log.message}"
    if kind == "task_run_state_changed":
        return f"{event.sequence} task {S.StateType.Name(event.task_run_state_changed.state.type)}"
    return f"{event.sequence} {S.StateType.Name(event.state_changed.type)}"


def test_log_lines_are_events_numbered_where_they_were_stored(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    _log(api, run.id, "one", "two")
    task = api.task_runs.CreateTaskRun(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t", dynamic_key="0")
    ).task_run
    _log(api, run.id, "from the task", task_run_id=task.id)
    api.propose(run.id, S.STATE_TYPE_COMPLETED)

    events = api.flow_runs.ListFlowRunEvents(FR.ListFlowRunEventsRequest(flow_run_id=run.id)).events
    assert [_describe(event) for event in events] == [
        "1 STATE_TYPE_PENDING",
        "2 STATE_TYPE_RUNNING",
        "3 flow log one",
        "4 flow log two",
        "5 task STATE_TYPE_PENDING",
        "6 task log from the task",
        "7 STATE_TYPE_COMPLETED",
    ]
    assert events[5].log.task_run_id == task.id
    later = api.flow_runs.ListFlowRunEvents(
        FR.ListFlowRunEventsRequest(flow_run_id=run.id, after_sequence=3, page_size=2)
    ).events
    assert [_describe(event) for event in later] == ["4 flow log two", "5 task STATE_TYPE_PENDING"]


def test_a_watch_streams_log_lines_as_they_are_stored(api: Api) -> None:
    run = api.new_run(api.new_flow().id)
    api.propose(run.id, S.STATE_TYPE_RUNNING)
    received: queue.Queue[FR.WatchFlowRunResponse | BaseException] = queue.Queue()

    def watch() -> None:
        try:
            request = FR.WatchFlowRunRequest(flow_run_id=run.id)
            for message in api.flow_runs.WatchFlowRun(request, timeout=30):
                received.put(message)
        except BaseException as exc:  # reported in the test's thread
            received.put(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        while True:  # the snapshot and the stored events come first
            message = received.get(timeout=20)
            assert not isinstance(message, BaseException), message
            if message.HasField("caught_up"):
                break
        _log(api, run.id, "live line")
        live = received.get(timeout=20)
        assert not isinstance(live, BaseException), live
        assert _describe(live.event) == "3 flow log live line"
    finally:
        api.propose(run.id, S.STATE_TYPE_COMPLETED)
        watcher.join(20)
    assert not watcher.is_alive()

"""Late runs over a real server: a SCHEDULED run long past its time becomes Late, and can start.

The server runs with a 1-second threshold and looks every 0.1 s; the tests wait for the Late
state with the ListFlowRunEvents long poll, so they assert what happened, not how fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from headwater.v1 import flow_runs_pb2, states_pb2
from rpc_helpers import Api
from server_harness import DATABASES, ServerFactory, database_url_for

pytestmark = pytest.mark.integration

S = states_pb2
FR = flow_runs_pb2
LATE_SETTINGS = {
    "HEADWATER_LATE_RUN_AFTER_SECONDS": "1",
    "HEADWATER_LATE_RUNS_LOOP_SECONDS": "0.1",
}


@pytest.fixture(params=DATABASES)
def api(request: pytest.FixtureRequest, make_server: ServerFactory) -> Iterator[Api]:
    server = make_server(database_url_for(request.param, request), env=LATE_SETTINGS)
    with server.channel() as channel:
        yield Api(channel)


def scheduled_run(api: Api, flow_id: str, at: datetime) -> FR.FlowRun:
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(at)
    state = S.State(type=S.STATE_TYPE_SCHEDULED, scheduled_time=when)
    return api.new_run(flow_id, state=state)


def state_names(api: Api, run_id: str, until: str, deadline_seconds: float = 30) -> list[str]:
    """The run's state names, long-polling until one is ``until`` (or the deadline passes)."""
    names: list[str] = []
    after = 0
    deadline = time.monotonic() + deadline_seconds
    while until not in names and time.monotonic() < deadline:
        response = api.flow_runs.ListFlowRunEvents(
            FR.ListFlowRunEventsRequest(
                flow_run_id=run_id, after_sequence=after, wait=duration_pb2.Duration(seconds=5)
            )
        )
        for event in response.events:
            after = event.sequence
            if event.HasField("state_changed"):
                names.append(event.state_changed.name)
    return names


def test_a_run_past_its_time_becomes_late_and_keeps_its_scheduled_time(api: Api) -> None:
    flow = api.new_flow()
    now = datetime.now(UTC)
    future = scheduled_run(api, flow.id, now + timedelta(hours=1))
    overdue = scheduled_run(api, flow.id, now - timedelta(minutes=5))

    assert state_names(api, overdue.id, until="Late") == ["Scheduled", "Late"]

    late = api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=overdue.id)).flow_run
    assert late.state.type == S.STATE_TYPE_SCHEDULED
    assert late.state.name == "Late"
    assert late.state.scheduled_time == overdue.state.scheduled_time
    assert "after its scheduled time" in late.state.message
    # A run whose time has not come is left alone (the pass that marked the other saw it).
    waiting = api.flow_runs.GetFlowRun(FR.GetFlowRunRequest(flow_run_id=future.id)).flow_run
    assert waiting.state.name == "Scheduled"


def test_a_late_run_can_still_start_and_is_not_marked_twice(api: Api) -> None:
    flow = api.new_flow()
    overdue = scheduled_run(api, flow.id, datetime.now(UTC) - timedelta(seconds=30))
    assert state_names(api, overdue.id, until="Late")[-1] == "Late"

    assert api.propose(overdue.id, S.STATE_TYPE_PENDING).result.decision == S.DECISION_ACCEPT
    running = api.propose(overdue.id, S.STATE_TYPE_RUNNING)
    assert running.result.decision == S.DECISION_ACCEPT
    # Another overdue run marked after this one proves later passes ran; the first keeps one Late.
    other = scheduled_run(api, flow.id, datetime.now(UTC) - timedelta(seconds=30))
    assert state_names(api, other.id, until="Late")[-1] == "Late"
    names = [event.state_changed.name for event in api.events(overdue.id)]
    assert names == ["Scheduled", "Late", "Pending", "Running"]

"""Which runs the late-run pass marks, on SQLite and PostgreSQL (the server test is in
tests/integration/test_late_runs_api.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2
from headwater.v1 import flow_runs_pb2, states_pb2
from headwater_server.scheduling.late_runs import mark_late_runs
from sync_application import SyncApplication

S = states_pb2


def scheduled(application: SyncApplication, at: datetime) -> str:
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(at)
    request = flow_runs_pb2.CreateFlowRunRequest(
        flow_name="etl", state=S.State(type=S.STATE_TYPE_SCHEDULED, scheduled_time=when)
    )
    return str(application.create_flow_run(request).flow_run.id)


def state(application: SyncApplication, run_id: str) -> S.State:
    request = flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id)
    return application.get_flow_run(request).flow_run.state


def propose(application: SyncApplication, run_id: str, state_type: int, **fields: object) -> None:
    application.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id,
            state=S.State(type=state_type, **fields),  # type: ignore[arg-type]
        )
    )


def mark(application: SyncApplication, after_seconds: float) -> int:
    return asyncio.run(mark_late_runs(application.backend, after_seconds))


def test_only_plain_scheduled_runs_past_the_threshold_are_marked(
    application: SyncApplication,
) -> None:
    now = datetime.now(UTC)
    overdue = scheduled(application, now - timedelta(minutes=10))
    within_threshold = scheduled(application, now - timedelta(seconds=5))
    future = scheduled(application, now + timedelta(minutes=10))
    started = scheduled(application, now - timedelta(minutes=10))
    propose(application, started, S.STATE_TYPE_PENDING)
    # A run waiting for its retry belongs to its engine: never marked Late.
    retrying = application.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", policy=S.RunPolicy(retries=1))
    ).flow_run.id
    propose(application, retrying, S.STATE_TYPE_RUNNING)
    propose(application, retrying, S.STATE_TYPE_FAILED)
    assert state(application, retrying).name == "AwaitingRetry"

    assert mark(application, after_seconds=60) == 1

    assert state(application, overdue).name == "Late"
    assert state(application, within_threshold).name == "Scheduled"
    assert state(application, future).name == "Scheduled"
    assert state(application, started).name == "Pending"
    assert state(application, retrying).name == "AwaitingRetry"
    # Marked once: a Late run is not marked again.
    assert mark(application, after_seconds=0) == 1  # the one within 60 s, now past 0 s
    assert state(application, within_threshold).name == "Late"
    assert mark(application, after_seconds=0) == 0

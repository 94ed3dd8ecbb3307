"""The repository on real databases: every test runs on SQLite and on PostgreSQL.

Nothing is mocked: each test gets a fresh database (a temporary SQLite file, or a throwaway
PostgreSQL database), opens it through ``Database.open`` (which applies the migrations), and
talks to it through the generated request and response messages the servicers use.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from headwater.v1 import flow_runs_pb2, flows_pb2, logs_pb2, states_pb2, task_runs_pb2
from headwater_server.errors import ServiceError
from headwater_server.storage import migrate, schema
from headwater_server.storage.database import Database
from headwater_server.storage.repository import Repository
from sqlalchemy import func, select, text
from sync_application import SyncApplication

RUNNING = states_pb2.STATE_TYPE_RUNNING
PENDING = states_pb2.STATE_TYPE_PENDING
SCHEDULED = states_pb2.STATE_TYPE_SCHEDULED
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
FAILED = states_pb2.STATE_TYPE_FAILED
CANCELLED = states_pb2.STATE_TYPE_CANCELLED
CANCELLING = states_pb2.STATE_TYPE_CANCELLING
ACCEPT = states_pb2.DECISION_ACCEPT
REJECT = states_pb2.DECISION_REJECT
WAIT = states_pb2.DECISION_WAIT
ABORT = states_pb2.DECISION_ABORT


def new_run(
    repo: Repository | SyncApplication, flow_name: str = "etl", **kwargs: object
) -> flow_runs_pb2.FlowRun:
    request = flow_runs_pb2.CreateFlowRunRequest(flow_name=flow_name, **kwargs)  # type: ignore[arg-type]
    return repo.create_flow_run(request).flow_run


def propose(
    repo: Repository | SyncApplication, run_id: str, state_type: int, **kwargs: object
) -> flow_runs_pb2.SetFlowRunStateResponse:
    state_fields = {
        k: kwargs.pop(k) for k in ("name", "message", "result", "failure") if k in kwargs
    }
    request = flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=run_id,
        state=states_pb2.State(type=state_type, **state_fields),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )
    return repo.set_flow_run_state(request)


def error_of(call, *args: object, **kwargs: object) -> ServiceError:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as info:
        call(*args, **kwargs)
    return info.value


def count(database: Database, table: object) -> int:
    with database.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- flows


def test_create_get_list_delete_flow(repository: Repository) -> None:
    created = repository.create_flow(flows_pb2.CreateFlowRequest(name="etl-daily", tags=["a"])).flow
    assert created.name == "etl-daily"
    assert list(created.tags) == ["a"]
    uuid.UUID(created.id)

    got = repository.get_flow(flows_pb2.GetFlowRequest(flow_id=created.id)).flow
    assert got == created

    dup = error_of(repository.create_flow, flows_pb2.CreateFlowRequest(name="etl-daily"))
    assert dup.code == grpc.StatusCode.ALREADY_EXISTS
    assert dup.reason == "FLOW_ALREADY_EXISTS"
    assert created.id in dup.message
    assert dup.metadata == {"existing_flow_id": created.id}

    repository.create_flow(flows_pb2.CreateFlowRequest(name="other"))
    listed = repository.list_flows(flows_pb2.ListFlowsRequest()).flows
    assert [f.name for f in listed] == ["other", "etl-daily"]  # newest first
    only = repository.list_flows(flows_pb2.ListFlowsRequest(name="etl-daily")).flows
    assert [f.id for f in only] == [created.id]

    repository.delete_flow(flows_pb2.DeleteFlowRequest(flow_id=created.id))
    gone = error_of(repository.get_flow, flows_pb2.GetFlowRequest(flow_id=created.id))
    assert gone.code == grpc.StatusCode.NOT_FOUND
    assert gone.reason == "FLOW_NOT_FOUND"


def test_flow_name_validation(repository: Repository, application: SyncApplication) -> None:
    bad = error_of(application.create_flow, flows_pb2.CreateFlowRequest(name="no/slashes"))
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.violations[0].field == "name"
    empty = error_of(application.create_flow, flows_pb2.CreateFlowRequest(name=""))
    assert empty.code == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_flow_cascades(database: Database, repository: Repository) -> None:
    run = new_run(repository)
    repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t", dynamic_key="0")
    )
    repository.create_logs(
        logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(flow_run_id=run.id, level=20, message="x")])
    )

    repository.delete_flow(flows_pb2.DeleteFlowRequest(flow_id=run.flow_id))

    for table in (schema.flow_runs, schema.flow_run_states, schema.task_runs, schema.logs):
        assert count(database, table) == 0, table


# ---------------------------------------------------------------------------- flow runs


def test_create_flow_run_defaults(repository: Repository) -> None:
    run = new_run(repository, parameters_json='{"n": 12345678901234567890}')

    assert run.flow_name == "etl"
    assert run.state.type == PENDING
    assert run.state.name == "Pending"
    assert run.state.id
    assert run.last_sequence == 1
    assert run.run_count == 0
    adjective, animal = run.name.split("-")
    assert adjective and animal
    # Parameters are stored as given: big integers stay exact.
    assert run.parameters_json == '{"n": 12345678901234567890}'
    assert run.expected_start_time == run.create_time

    got = repository.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)).flow_run
    assert got.id == run.id
    assert got.state == run.state
    assert got.flow_id == run.flow_id


def test_create_flow_run_by_name_registers_flow_once(repository: Repository) -> None:
    first = new_run(repository, "by-name")
    second = new_run(repository, "by-name")
    assert first.flow_id == second.flow_id
    flows = repository.list_flows(flows_pb2.ListFlowsRequest(name="by-name")).flows
    assert len(flows) == 1

    by_id = repository.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_id=first.flow_id, name="explicit")
    ).flow_run
    assert by_id.flow_name == "by-name"
    assert by_id.name == "explicit"


def test_create_flow_run_scheduled(repository: Repository) -> None:
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(datetime(2030, 1, 1, tzinfo=UTC))
    run = new_run(repository, state=states_pb2.State(type=SCHEDULED, scheduled_time=when))

    assert run.state.type == SCHEDULED
    assert run.state.scheduled_time == when
    assert run.expected_start_time == when

    # Before its time, RUNNING is answered with WAIT.
    answer = propose(repository, run.id, RUNNING)
    assert answer.result.decision == WAIT
    assert answer.result.wait.seconds > 100_000
    assert answer.flow_run.state.type == SCHEDULED


def test_create_flow_run_invalid_arguments(
    repository: Repository, application: SyncApplication
) -> None:
    cases = [
        (flow_runs_pb2.CreateFlowRunRequest(), "flow_id"),
        (flow_runs_pb2.CreateFlowRunRequest(flow_id="not-a-uuid"), "flow_id"),
        (
            flow_runs_pb2.CreateFlowRunRequest(flow_name="f", parameters_json="[1]"),
            "parameters_json",
        ),
        (flow_runs_pb2.CreateFlowRunRequest(flow_name="f", parameters_json="{"), "parameters_json"),
        (
            flow_runs_pb2.CreateFlowRunRequest(flow_name="f", state=states_pb2.State(type=RUNNING)),
            "state.type",
        ),
        (
            flow_runs_pb2.CreateFlowRunRequest(flow_name="f", parent_flow_run_id="nope"),
            "parent_flow_run_id",
        ),
        (flow_runs_pb2.CreateFlowRunRequest(flow_name="f", request_id="nope"), "request_id"),
        (
            flow_runs_pb2.CreateFlowRunRequest(
                flow_name="f", policy=states_pb2.RunPolicy(retries=-1)
            ),
            "policy.retries",
        ),
    ]
    for request, field in cases:
        error = error_of(application.create_flow_run, request)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, request
        assert error.violations[0].field == field
        assert field in error.message


def test_create_flow_run_not_found(repository: Repository) -> None:
    missing = str(uuid.uuid4())
    error = error_of(
        repository.create_flow_run, flow_runs_pb2.CreateFlowRunRequest(flow_id=missing)
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_NOT_FOUND"
    assert missing in error.message

    parent = error_of(
        repository.create_flow_run,
        flow_runs_pb2.CreateFlowRunRequest(flow_name="f", parent_flow_run_id=missing),
    )
    assert parent.reason == "FLOW_RUN_NOT_FOUND"

    parent_task = error_of(
        repository.create_flow_run,
        flow_runs_pb2.CreateFlowRunRequest(flow_name="f", parent_task_run_id=missing),
    )
    assert parent_task.reason == "TASK_RUN_NOT_FOUND"
    assert missing in parent_task.message


def test_subflow_run_keeps_its_parents(repository: Repository) -> None:
    parent = new_run(repository, "parent")
    task = repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=parent.id, task_key="k", dynamic_key="0")
    ).task_run

    child = new_run(
        repository,
        "child",
        parent_flow_run_id=parent.id,
        parent_task_run_id=task.id,
    )

    stored = repository.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=child.id))
    assert stored.flow_run == child
    assert (child.parent_flow_run_id, child.parent_task_run_id) == (parent.id, task.id)
    assert child.flow_id == new_run(repository, "child").flow_id  # registered once, by name


def test_idempotency_key_conflict_with_request_id_stores_no_answer(
    repository: Repository,
) -> None:
    new_run(repository, idempotency_key="once")
    request = flow_runs_pb2.CreateFlowRunRequest(
        flow_name="etl", idempotency_key="once", request_id=str(uuid.uuid4())
    )

    # The refused create committed nothing, so its retry is refused the same way.
    for _ in range(2):
        assert error_of(repository.create_flow_run, request).reason == "FLOW_RUN_ALREADY_EXISTS"


def test_idempotency_key_conflict_names_existing_run(repository: Repository) -> None:
    first = new_run(repository, idempotency_key="2026-01-01")

    error = error_of(
        repository.create_flow_run,
        flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", idempotency_key="2026-01-01"),
    )

    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.reason == "FLOW_RUN_ALREADY_EXISTS"
    assert first.id in error.message
    assert error.resource_name == first.id
    assert error.metadata["existing_flow_run_id"] == first.id
    # The key is unique per flow: another flow may use it.
    other = new_run(repository, "another-flow", idempotency_key="2026-01-01")
    assert other.id != first.id


def test_request_id_replay_returns_first_answer(database: Database, repository: Repository) -> None:
    request = flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", request_id=str(uuid.uuid4()))

    first = repository.create_flow_run(request)
    again = repository.create_flow_run(request)

    assert again == first
    assert count(database, schema.flow_runs) == 1


def test_request_id_reused_for_another_method_is_refused(repository: Repository) -> None:
    request_id = str(uuid.uuid4())
    run = new_run(repository, request_id=request_id)

    error = error_of(
        repository.cancel_flow_run,
        flow_runs_pb2.CancelFlowRunRequest(flow_run_id=run.id, request_id=request_id),
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations[0].field == "request_id"


def test_get_flow_run_errors(repository: Repository, application: SyncApplication) -> None:
    malformed = error_of(
        application.get_flow_run, flow_runs_pb2.GetFlowRunRequest(flow_run_id="abc")
    )
    assert malformed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert malformed.violations[0].field == "flow_run_id"

    missing = str(uuid.uuid4())
    error = error_of(application.get_flow_run, flow_runs_pb2.GetFlowRunRequest(flow_run_id=missing))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_RUN_NOT_FOUND"
    assert missing in error.message


def test_list_flow_runs_paginates_newest_first(repository: Repository) -> None:
    created = [new_run(repository).id for _ in range(7)]

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = repository.list_flow_runs(
            flow_runs_pb2.ListFlowRunsRequest(page_size=3, page_token=token)
        )
        seen.extend(r.id for r in page.flow_runs)
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert pages == 3
    assert seen == list(reversed(created))


def test_list_flow_runs_page_rules(repository: Repository, application: SyncApplication) -> None:
    new_run(repository)
    for size in (-1, 1001):
        error = error_of(
            application.list_flow_runs, flow_runs_pb2.ListFlowRunsRequest(page_size=size)
        )
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.violations[0].field == "page_size"
    token = error_of(
        application.list_flow_runs, flow_runs_pb2.ListFlowRunsRequest(page_token="garbage!")
    )
    assert token.violations[0].field == "page_token"
    # A token from another List method is refused too.
    for _ in range(2):
        repository.create_flow(flows_pb2.CreateFlowRequest(name=f"f{uuid.uuid4().hex[:6]}"))
    flows_token = repository.list_flows(flows_pb2.ListFlowsRequest(page_size=1)).next_page_token
    assert flows_token
    error = error_of(
        application.list_flow_runs, flow_runs_pb2.ListFlowRunsRequest(page_token=flows_token)
    )
    assert error.violations[0].field == "page_token"
    assert len(repository.list_flow_runs(flow_runs_pb2.ListFlowRunsRequest()).flow_runs) == 1


def test_list_flow_runs_filters(repository: Repository, application: SyncApplication) -> None:
    a1 = new_run(repository, "alpha", tags=["prod", "eu"])
    a2 = new_run(repository, "alpha", tags=["dev"])
    b1 = new_run(repository, "beta", tags=["prod"], parent_flow_run_id=a1.id)
    tricky = new_run(repository, "beta", tags=['pr"od', "x,y", "PROD"])
    propose(repository, a2.id, RUNNING)

    def ids(**filter_fields: object) -> set[str]:
        request = flow_runs_pb2.ListFlowRunsRequest(
            filter=flow_runs_pb2.FlowRunFilter(**filter_fields)  # type: ignore[arg-type]
        )
        return {r.id for r in repository.list_flow_runs(request).flow_runs}

    assert ids(flow_name="alpha") == {a1.id, a2.id}
    assert ids(flow_ids=[b1.flow_id]) == {b1.id, tricky.id}
    assert ids(state_types=[RUNNING]) == {a2.id}
    assert ids(state_types=[PENDING], flow_name="alpha") == {a1.id}
    assert ids(parent_flow_run_id=a1.id) == {b1.id}
    assert ids(tags=["prod"]) == {a1.id, b1.id}  # case-sensitive, whole tags only
    assert ids(tags=["prod", "eu"]) == {a1.id}
    assert ids(tags=['pr"od']) == {tricky.id}
    assert ids(tags=["x,y"]) == {tricky.id}
    assert ids(tags=["x"]) == set()
    assert ids(tags=["PROD"]) == {tricky.id}
    assert ids(tags=["missing"]) == set()

    bad = error_of(
        application.list_flow_runs,
        flow_runs_pb2.ListFlowRunsRequest(
            filter=flow_runs_pb2.FlowRunFilter(state_types=[states_pb2.STATE_TYPE_UNSPECIFIED])
        ),
    )
    assert bad.violations[0].field == "filter.state_types[0]"


def test_update_flow_run(repository: Repository, application: SyncApplication) -> None:
    run = new_run(repository, tags=["old"])

    updated = repository.update_flow_run(
        flow_runs_pb2.UpdateFlowRunRequest(
            flow_run_id=run.id,
            name="renamed",
            tags=["new", "tags"],
            update_mask=field_mask_pb2.FieldMask(paths=["name", "tags"]),
        )
    ).flow_run
    assert updated.name == "renamed"
    assert list(updated.tags) == ["new", "tags"]

    only_name = repository.update_flow_run(
        flow_runs_pb2.UpdateFlowRunRequest(
            flow_run_id=run.id, name="again", update_mask=field_mask_pb2.FieldMask(paths=["name"])
        )
    ).flow_run
    assert list(only_name.tags) == ["new", "tags"]

    unknown = error_of(
        application.update_flow_run,
        flow_runs_pb2.UpdateFlowRunRequest(
            flow_run_id=run.id, update_mask=field_mask_pb2.FieldMask(paths=["state"])
        ),
    )
    assert unknown.violations[0].field == "update_mask"
    missing = error_of(
        application.update_flow_run,
        flow_runs_pb2.UpdateFlowRunRequest(
            flow_run_id=str(uuid.uuid4()),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            name="x",
        ),
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND


def test_delete_flow_run(database: Database, repository: Repository) -> None:
    run = new_run(repository)
    propose(repository, run.id, RUNNING)

    repository.delete_flow_run(flow_runs_pb2.DeleteFlowRunRequest(flow_run_id=run.id))

    assert count(database, schema.flow_run_states) == 0
    error = error_of(
        repository.delete_flow_run, flow_runs_pb2.DeleteFlowRunRequest(flow_run_id=run.id)
    )
    assert error.code == grpc.StatusCode.NOT_FOUND


def test_a_read_sees_one_snapshot_while_a_write_commits(repository: Repository) -> None:
    # A page of a run's events reads the run row, then its events: a state committed between
    # the two must show in both or in neither (READ COMMITTED on PostgreSQL showed it in one).
    run = new_run(repository)
    last = select(schema.flow_runs.c.last_sequence).where(schema.flow_runs.c.id == run.id)
    with repository._read() as conn:
        before = conn.execute(last).scalar_one()
        propose(repository, run.id, RUNNING)  # commits on another connection
        assert conn.execute(last).scalar_one() == before
    assert repository.get_flow_run_progress(run.id) == (before + 1, False)


# ---------------------------------------------------------------------------- state proposals


def test_happy_path_history_and_times(repository: Repository) -> None:
    run = new_run(repository)

    running = propose(repository, run.id, RUNNING)
    assert running.result.decision == ACCEPT
    assert running.result.state.type == RUNNING
    assert running.result.state.name == "Running"
    assert running.flow_run.run_count == 1
    assert running.flow_run.HasField("start_time")
    assert not running.flow_run.HasField("end_time")
    time.sleep(0.01)

    result = states_pb2.StateResult(json="[1, 2]")
    done = propose(repository, run.id, COMPLETED, result=result)
    assert done.result.decision == ACCEPT
    assert done.result.state.result.json == "[1, 2]"
    assert done.flow_run.HasField("end_time")
    assert done.flow_run.total_run_time.ToTimedelta() >= timedelta(milliseconds=10)
    assert done.flow_run.last_sequence == 3

    got = repository.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)).flow_run
    assert got.state.result.json == "[1, 2]"
    assert got.state == done.result.state
    assert got.total_run_time == done.flow_run.total_run_time

    events = repository.list_flow_run_events(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id)
    )
    assert [e.sequence for e in events.events] == [1, 2, 3]
    assert [e.state_changed.type for e in events.events] == [PENDING, RUNNING, COMPLETED]
    assert all(e.flow_run_id == run.id for e in events.events)
    assert events.events[2].state_changed.result.json == "[1, 2]"
    assert events.last_sequence == 3
    assert events.finished

    after = repository.list_flow_run_events(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id, after_sequence=1, page_size=1)
    )
    assert [e.sequence for e in after.events] == [2]
    assert not after.finished  # an event follows the returned one
    assert repository.get_flow_run_progress(run.id) == (3, True)

    # A finished run refuses further changes, naming its final state.
    late = propose(repository, run.id, RUNNING)
    assert late.result.decision == REJECT
    assert late.result.state.type == COMPLETED
    assert late.result.state.result.json == "[1, 2]"
    assert "already finished" in late.result.reason


def test_events_of_unfinished_run(repository: Repository) -> None:
    run = new_run(repository)
    propose(repository, run.id, RUNNING)

    events = repository.list_flow_run_events(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id, after_sequence=2)
    )

    assert list(events.events) == []
    assert events.last_sequence == 2
    assert not events.finished
    assert repository.get_flow_run_progress(run.id) == (2, False)


def test_transition_id_replay_writes_one_state(database: Database, repository: Repository) -> None:
    run = new_run(repository)
    transition = str(uuid.uuid4())

    first = propose(repository, run.id, RUNNING, transition_id=transition)
    again = propose(repository, run.id, RUNNING, transition_id=transition)

    assert first.result.decision == ACCEPT
    assert again == first  # not ABORT "already running": the first answer, replayed
    assert count(database, schema.flow_run_states) == 2  # PENDING + one RUNNING
    # A fresh transition id is a new proposal.
    other = propose(repository, run.id, RUNNING, transition_id=str(uuid.uuid4()))
    assert other.result.decision == ABORT


def test_transition_id_reused_on_another_run_is_refused(repository: Repository) -> None:
    transition = str(uuid.uuid4())
    a, b = new_run(repository), new_run(repository)
    propose(repository, a.id, RUNNING, transition_id=transition)

    error = error_of(propose, repository, b.id, RUNNING, transition_id=transition)  # type: ignore[arg-type]

    assert error.violations[0].field == "transition_id"


def test_expected_state_id(repository: Repository) -> None:
    run = new_run(repository)

    stale = propose(repository, run.id, RUNNING, expected_state_id=str(uuid.uuid4()))
    assert stale.result.decision == REJECT
    assert stale.result.state.id == run.state.id
    assert stale.flow_run.last_sequence == 1

    fresh = propose(repository, run.id, RUNNING, expected_state_id=run.state.id)
    assert fresh.result.decision == ACCEPT


def test_force_overrides_terminal(repository: Repository) -> None:
    run = new_run(repository)
    propose(repository, run.id, RUNNING)
    propose(repository, run.id, FAILED, message="boom")

    forced = propose(repository, run.id, PENDING, force=True)

    assert forced.result.decision == ACCEPT
    assert forced.result.reason.startswith("Forced")
    assert forced.flow_run.state.type == PENDING
    assert not forced.flow_run.HasField("end_time")


def test_retry_path_is_enforced_by_the_service(repository: Repository) -> None:
    delay = duration_pb2.Duration(nanos=200_000_000)
    run = new_run(repository, policy=states_pb2.RunPolicy(retries=1, retry_delay=delay))
    assert run.policy.retries == 1
    assert run.policy.retry_delay == delay
    propose(repository, run.id, RUNNING)

    failure = states_pb2.Failure(exception_type="builtins.ValueError", message="bad input")
    rejected = propose(repository, run.id, FAILED, failure=failure)
    assert rejected.result.decision == REJECT
    awaiting = rejected.result.state
    assert awaiting.type == SCHEDULED
    assert awaiting.name == "AwaitingRetry"
    assert awaiting.message == "Retry 1 of 1 after: bad input"
    assert awaiting.failure.exception_type == "builtins.ValueError"
    assert rejected.flow_run.state == awaiting
    assert rejected.flow_run.last_sequence == 3

    early = propose(repository, run.id, RUNNING, name="Retrying")
    assert early.result.decision == WAIT
    assert 0 < early.result.wait.ToTimedelta().total_seconds() <= 0.2
    time.sleep(early.result.wait.ToTimedelta().total_seconds() + 0.01)

    retrying = propose(repository, run.id, RUNNING, name="Retrying")
    assert retrying.result.decision == ACCEPT
    assert retrying.result.state.name == "Retrying"
    assert retrying.flow_run.run_count == 2

    final = propose(repository, run.id, FAILED, failure=failure)
    assert final.result.decision == ACCEPT
    assert final.result.state.type == FAILED
    assert final.result.state.message == "bad input"
    events = repository.list_flow_run_events(
        flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id)
    )
    assert [e.state_changed.name for e in events.events] == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Failed",
    ]
    assert [e.sequence for e in events.events] == [1, 2, 3, 4, 5]


def test_set_state_errors(repository: Repository, application: SyncApplication) -> None:
    run = new_run(repository)
    missing_type = error_of(propose, application, run.id, states_pb2.STATE_TYPE_UNSPECIFIED)  # type: ignore[arg-type]
    assert missing_type.violations[0].field == "state.type"
    unknown_type = error_of(propose, application, run.id, 42)  # type: ignore[arg-type]
    assert unknown_type.violations[0].field == "state.type"
    bad_transition = error_of(propose, application, run.id, RUNNING, transition_id="x")  # type: ignore[arg-type]
    assert bad_transition.violations[0].field == "transition_id"
    missing = str(uuid.uuid4())
    not_found = error_of(propose, application, missing, RUNNING)  # type: ignore[arg-type]
    assert not_found.code == grpc.StatusCode.NOT_FOUND
    assert missing in not_found.message


def _concurrently(
    url: str, proposals: list[dict[str, object]]
) -> list[flow_runs_pb2.SetFlowRunStateResponse]:
    """Send each proposal from its own thread through its own Database on ``url``, at once."""
    databases = [Database.open(url) for _ in proposals]
    barrier = threading.Barrier(len(proposals))
    answers: list[flow_runs_pb2.SetFlowRunStateResponse] = []
    lock = threading.Lock()

    def engine(db: Database, proposal: dict[str, object]) -> None:
        barrier.wait()
        answer = propose(db.repository, **proposal)  # type: ignore[arg-type]
        with lock:
            answers.append(answer)

    threads = [
        threading.Thread(target=engine, args=(db, proposal))
        for db, proposal in zip(databases, proposals, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in databases:
        db.close()
    return answers


def test_race_two_engines_exactly_one_accept(database_url: str, repository: Repository) -> None:
    for _ in range(5):
        run = new_run(repository)
        proposal = {"run_id": run.id, "state_type": RUNNING}
        answers = _concurrently(
            database_url,
            [{**proposal, "transition_id": str(uuid.uuid4())} for _ in range(2)],
        )
        decisions = sorted(a.result.decision for a in answers)
        assert decisions == [ACCEPT, ABORT], decisions
        final = repository.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id))
        assert final.flow_run.run_count == 1
        assert final.flow_run.last_sequence == 2


def test_race_same_transition_twice_gets_one_answer(
    database_url: str, repository: Repository
) -> None:
    """A client resending an in-flight proposal (same transition_id) through another server."""
    for _ in range(5):
        run = new_run(repository)
        proposal = {"run_id": run.id, "state_type": RUNNING, "transition_id": str(uuid.uuid4())}
        answers = _concurrently(database_url, [proposal, proposal])
        assert len(answers) == 2
        assert answers[0] == answers[1]
        assert answers[0].result.decision == ACCEPT
        events = repository.list_flow_run_events(
            flow_runs_pb2.ListFlowRunEventsRequest(flow_run_id=run.id)
        )
        assert [e.sequence for e in events.events] == [1, 2]


def test_cancel_flow_run(repository: Repository) -> None:
    pending = new_run(repository)
    cancelled = repository.cancel_flow_run(
        flow_runs_pb2.CancelFlowRunRequest(flow_run_id=pending.id, reason="not needed")
    ).flow_run
    assert cancelled.state.type == CANCELLED
    assert cancelled.state.message == "not needed"
    assert cancelled.HasField("end_time")

    running = new_run(repository)
    propose(repository, running.id, RUNNING)
    request_id = str(uuid.uuid4())
    request = flow_runs_pb2.CancelFlowRunRequest(flow_run_id=running.id, request_id=request_id)
    cancelling = repository.cancel_flow_run(request).flow_run
    assert cancelling.state.type == CANCELLING
    assert repository.cancel_flow_run(request).flow_run == cancelling  # replay
    # Cancelling again without a request id keeps CANCELLING and writes nothing.
    again = repository.cancel_flow_run(
        flow_runs_pb2.CancelFlowRunRequest(flow_run_id=running.id)
    ).flow_run
    assert again.state.id == cancelling.state.id
    assert again.last_sequence == 3
    # The engine's RUNNING proposal now finds CANCELLING; it stops the run and reports it.
    assert propose(repository, running.id, COMPLETED).result.decision == ACCEPT

    finished = error_of(
        repository.cancel_flow_run, flow_runs_pb2.CancelFlowRunRequest(flow_run_id=running.id)
    )
    assert finished.code == grpc.StatusCode.FAILED_PRECONDITION
    assert finished.reason == "FLOW_RUN_ALREADY_FINISHED"
    assert running.id in finished.message
    missing = error_of(
        repository.cancel_flow_run,
        flow_runs_pb2.CancelFlowRunRequest(flow_run_id=str(uuid.uuid4())),
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------------------- task runs


def test_task_run_lifecycle(repository: Repository) -> None:
    run = new_run(repository)
    created = repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(
            flow_run_id=run.id,
            task_key="mymodule.extract-1a2b3c",
            dynamic_key="0",
            parameters_json='{"x": 1}',
            tags=["t"],
            cache_key="ck",
            policy=states_pb2.RunPolicy(retries=1),
        )
    ).task_run
    assert created.name == "extract-0"
    assert created.state.type == PENDING
    assert created.cache_key == "ck"

    # As Prefect's API does: a create naming an existing (flow run, task key, dynamic key)
    # returns that run instead of a second one.
    dup = repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="mymodule.extract-1a2b3c", dynamic_key="0"
        ),
    )
    assert (dup.created, dup.task_run.id, dup.task_run.cache_key) == (False, created.id, "ck")

    def propose_task(state: states_pb2.State, **kwargs: object):  # type: ignore[no-untyped-def]
        return repository.set_task_run_state(
            task_runs_pb2.SetTaskRunStateRequest(task_run_id=created.id, state=state, **kwargs)  # type: ignore[arg-type]
        )

    assert propose_task(states_pb2.State(type=RUNNING)).result.decision == ACCEPT
    abort = propose_task(states_pb2.State(type=RUNNING))
    assert abort.result.decision == ABORT
    assert "task run" in abort.result.reason
    retry = propose_task(states_pb2.State(type=FAILED, message="x"))
    assert retry.result.decision == REJECT
    assert retry.result.state.name == "AwaitingRetry"
    assert propose_task(states_pb2.State(type=RUNNING, name="Retrying")).task_run.run_count == 2
    transition = str(uuid.uuid4())
    done = propose_task(
        states_pb2.State(type=COMPLETED, result=states_pb2.StateResult(json="3")),
        transition_id=transition,
    )
    assert done.result.decision == ACCEPT
    assert propose_task(states_pb2.State(type=COMPLETED), transition_id=transition) == done

    got = repository.get_task_run(task_runs_pb2.GetTaskRunRequest(task_run_id=created.id))
    assert got.task_run.state.result.json == "3"
    assert got.task_run.run_count == 2

    repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="other", dynamic_key="0")
    )
    listed = repository.list_task_runs(
        task_runs_pb2.ListTaskRunsRequest(filter=task_runs_pb2.TaskRunFilter(flow_run_id=run.id))
    ).task_runs
    assert [t.task_key for t in listed] == ["mymodule.extract-1a2b3c", "other"]  # creation order
    completed = repository.list_task_runs(
        task_runs_pb2.ListTaskRunsRequest(
            filter=task_runs_pb2.TaskRunFilter(state_types=[COMPLETED])
        )
    ).task_runs
    assert [t.id for t in completed] == [created.id]
    page = repository.list_task_runs(task_runs_pb2.ListTaskRunsRequest(page_size=1))
    rest = repository.list_task_runs(
        task_runs_pb2.ListTaskRunsRequest(page_size=1, page_token=page.next_page_token)
    )
    assert [page.task_runs[0].id, rest.task_runs[0].id] == [t.id for t in listed]
    assert rest.next_page_token == ""

    repository.delete_task_run(task_runs_pb2.DeleteTaskRunRequest(task_run_id=created.id))
    gone = error_of(
        repository.get_task_run, task_runs_pb2.GetTaskRunRequest(task_run_id=created.id)
    )
    assert gone.reason == "TASK_RUN_NOT_FOUND"


def test_a_task_runs_end_keeps_every_rule(repository: Repository) -> None:
    """COMPLETED for a RUNNING task run skips the snapshot and the rules that cannot object
    (`rules.plain_completion`); what must still be refused or replayed still is."""
    run = new_run(repository)

    def start(dynamic_key: str) -> task_runs_pb2.TaskRun:
        return repository.create_task_run(
            task_runs_pb2.CreateTaskRunRequest(
                flow_run_id=run.id, task_key="t", dynamic_key=dynamic_key, start=True
            )
        ).task_run

    def end(task_run_id: str, **kwargs: object) -> task_runs_pb2.SetTaskRunStateResponse:
        return repository.set_task_run_state(
            task_runs_pb2.SetTaskRunStateRequest(
                task_run_id=task_run_id,
                state=states_pb2.State(type=COMPLETED, result=states_pb2.StateResult(json="7")),
                **kwargs,  # type: ignore[arg-type]
            )
        )

    running = start("0")
    transition = str(uuid.uuid4())
    done = end(running.id, transition_id=transition)
    assert done.result.decision == ACCEPT
    assert done.result.reason == "The task run moved from Running to Completed."
    assert (done.task_run.state.type, done.task_run.state.result.json) == (COMPLETED, "7")
    assert done.result.state == done.task_run.state
    assert done.task_run.end_time.ToMicroseconds() > 0
    assert done.task_run.run_count == 1
    # The same transition again: its first answer, and no second state.
    assert end(running.id, transition_id=transition) == done
    # A second COMPLETED (another transition) is refused: the run is finished.
    again = end(running.id, transition_id=str(uuid.uuid4()))
    assert again.result.decision == REJECT
    assert again.task_run.state.id == done.task_run.state.id
    states = repository.list_task_run_states(
        task_runs_pb2.ListTaskRunStatesRequest(task_run_id=running.id)
    ).states
    assert [s.type for s in states] == [PENDING, RUNNING, COMPLETED]
    # A condition on the proposal still counts: the expected state must be the current one.
    other = start("1")
    stale = end(other.id, expected_state_id=str(uuid.uuid4()))
    assert stale.result.decision == REJECT
    assert stale.task_run.state.type == RUNNING
    # From PENDING (not started by the service) the rules judge it as before.
    pending = repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t", dynamic_key="2")
    ).task_run
    assert end(pending.id).result.decision == ACCEPT
    missing = error_of(end, str(uuid.uuid4()))
    assert missing.reason == "TASK_RUN_NOT_FOUND"


def test_the_cache_lookup_and_an_engines_clean_up_use_their_partial_indexes(
    sqlite_url: str,
) -> None:
    """Both indexes hold only the task runs with a key or an owner (revision 0022); the
    queries name that condition, so the planner still searches them instead of scanning."""
    import sqlite3

    db = Database.open(sqlite_url)
    try:
        lookup = db.repository._raw_cache.lookup.sql
    finally:
        db.close()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        cache_plan = conn.execute("EXPLAIN QUERY PLAN " + lookup, ("k", COMPLETED, "x", 0))
        assert "ix_task_runs_cache_key_end_time" in str(cache_plan.fetchall())
        owner_plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM task_runs WHERE engine_id = ?", ("e",)
        )
        assert "ix_task_runs_engine_id" in str(owner_plan.fetchall())


def test_task_run_errors(repository: Repository, application: SyncApplication) -> None:
    missing = str(uuid.uuid4())
    error = error_of(
        application.create_task_run,
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=missing, task_key="t", dynamic_key="0"),
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_RUN_NOT_FOUND"
    no_key = error_of(
        application.create_task_run,
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=missing, dynamic_key="0"),
    )
    assert no_key.violations[0].field == "task_key"
    not_found = error_of(
        application.set_task_run_state,
        task_runs_pb2.SetTaskRunStateRequest(
            task_run_id=missing, state=states_pb2.State(type=RUNNING)
        ),
    )
    assert not_found.reason == "TASK_RUN_NOT_FOUND"


def test_create_task_run_request_id_replay(database: Database, repository: Repository) -> None:
    run = new_run(repository)
    request = task_runs_pb2.CreateTaskRunRequest(
        flow_run_id=run.id, task_key="t", dynamic_key="0", request_id=str(uuid.uuid4())
    )
    assert repository.create_task_run(request) == repository.create_task_run(request)
    assert count(database, schema.task_runs) == 1


def test_a_resent_create_and_start_gets_its_first_answer_after_the_run_moved_on(
    database: Database, repository: Repository
) -> None:
    """The request_id's stored answer is the replay, even outside any flow (where only the
    request_log's key collides) and after the run has ended since."""
    run = new_run(repository)
    for flow_run_id in (run.id, ""):
        request = task_runs_pb2.CreateTaskRunRequest(
            flow_run_id=flow_run_id,
            task_key="t",
            dynamic_key="0",
            start=True,
            request_id=str(uuid.uuid4()),
        )
        first = repository.create_task_run(request)
        assert (first.created, first.task_run.state.type) == (True, RUNNING)
        repository.set_task_run_state(
            task_runs_pb2.SetTaskRunStateRequest(
                task_run_id=first.task_run.id, state=states_pb2.State(type=COMPLETED)
            )
        )
        assert repository.create_task_run(request) == first
    assert count(database, schema.task_runs) == 2
    # A request_id already used by another kind of request is refused, and creates nothing.
    reused = task_runs_pb2.CreateTaskRunRequest(
        task_key="t", dynamic_key="1", start=True, request_id=str(uuid.uuid4())
    )
    repository.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", request_id=reused.request_id)
    )
    refused = error_of(repository.create_task_run, reused)
    assert (refused.code, refused.violations[0].field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "request_id",
    )
    assert count(database, schema.task_runs) == 2


# ---------------------------------------------------------------------------- logs


def test_logs_batch_and_listing(database: Database, repository: Repository) -> None:
    run = new_run(repository)
    task = repository.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t", dynamic_key="0")
    ).task_run
    base = datetime(2026, 1, 1, tzinfo=UTC)
    lines = []
    for i in range(5):
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(base + timedelta(seconds=i))
        lines.append(
            logs_pb2.Log(
                flow_run_id=run.id,
                task_run_id=task.id if i % 2 else "",
                logger_name="headwater.test",
                level=10 * (i + 1),
                message=f"line {i}",
                log_time=when,
            )
        )
    request_id = str(uuid.uuid4())
    request = logs_pb2.CreateLogsRequest(logs=lines, request_id=request_id)
    assert repository.create_logs(request).created_count == 5
    assert repository.create_logs(request).created_count == 5  # replay stores nothing
    assert count(database, schema.logs) == 5

    def messages(**filter_fields: object) -> list[str]:
        request = logs_pb2.ListLogsRequest(filter=logs_pb2.LogFilter(**filter_fields))  # type: ignore[arg-type]
        return [log.message for log in repository.list_logs(request).logs]

    assert messages(flow_run_id=run.id) == [f"line {i}" for i in range(5)]
    assert messages(task_run_id=task.id) == ["line 1", "line 3"]
    assert messages(min_level=40) == ["line 3", "line 4"]
    first = repository.list_logs(logs_pb2.ListLogsRequest(page_size=2))
    second = repository.list_logs(
        logs_pb2.ListLogsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [log.message for log in second.logs] == ["line 2", "line 3"]
    assert first.logs[0].logger_name == "headwater.test"
    assert first.logs[0].log_time == lines[0].log_time


def test_logs_all_or_none(
    database: Database, repository: Repository, application: SyncApplication
) -> None:
    run = new_run(repository)
    missing = str(uuid.uuid4())
    batch = logs_pb2.CreateLogsRequest(
        logs=[
            logs_pb2.Log(flow_run_id=run.id, level=20, message="ok"),
            logs_pb2.Log(flow_run_id=missing, level=20, message="orphan"),
        ]
    )

    error = error_of(application.create_logs, batch)

    assert error.code == grpc.StatusCode.NOT_FOUND
    assert missing in error.message
    assert count(database, schema.logs) == 0

    no_run = error_of(
        application.create_logs,
        logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(level=20, message="x")]),
    )
    assert no_run.violations[0].field == "logs[0].flow_run_id"
    too_many = error_of(
        application.create_logs,
        logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(flow_run_id=run.id, message="x")] * 1001),
    )
    assert too_many.violations[0].field == "logs"


# ---------------------------------------------------------------------------- lifecycle


def test_migrations_run_once_then_fast_path(database_url: str) -> None:
    first = Database.open(database_url)
    try:
        assert first.migrated
        with first.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION
    finally:
        first.close()

    second = Database.open(database_url)
    try:
        assert not second.migrated
    finally:
        second.close()


def test_fast_path_does_not_import_alembic(database_url: str) -> None:
    Database.open(database_url).close()
    code = (
        "import sys\n"
        "from headwater_server.storage.database import Database\n"
        f"db = Database.open({database_url!r})\n"
        "assert not db.migrated\n"
        "db.close()\n"
        "assert 'alembic' not in sys.modules, 'alembic was imported on the fast path'\n"
        "assert 'sqlalchemy.orm' not in sys.modules, 'the ORM was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_head_revision_matches_the_scripts() -> None:
    assert migrate.script_head() == migrate.HEAD_REVISION


def test_schema_matches_the_migrations(database: Database) -> None:
    """Autogenerate finds no difference between schema.py and the migrated database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_object": schema.objects_on(conn.dialect.name)},
        )
        assert compare_metadata(context, schema.metadata) == []


def test_concurrent_first_open_migrates_once(database_url: str) -> None:
    code = (
        "import sys\n"
        "from headwater_server.storage.database import Database\n"
        f"db = Database.open({database_url!r})\n"
        "print(int(db.migrated))\n"
        "db.close()\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0]
    assert sorted(outputs) == ["0", "0", "1"]


def test_data_survives_close_and_reopen(database_url: str) -> None:
    db = Database.open(database_url)
    run = new_run(db.repository)
    propose(db.repository, run.id, RUNNING)
    db.close()

    reopened = Database.open(database_url)
    try:
        got = reopened.repository.get_flow_run(
            flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)
        ).flow_run
        assert got.state.type == RUNNING
        assert got.last_sequence == 2
    finally:
        reopened.close()


def test_sqlite_connection_settings(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA temp_store")).scalar() == 2  # MEMORY
    finally:
        db.close()


def test_the_ids_the_service_makes_are_time_ordered_uuids(database: Database) -> None:
    """Version 7: a run made later has a larger id, so new rows go to each index's end."""
    repository = database.repository
    first = repository.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="ids"))
    time.sleep(0.002)  # a later millisecond: the ids' time parts differ
    second = repository.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="ids"))
    ids = [uuid.UUID(answer.flow_run.id) for answer in (first, second)]
    assert [(made.version, made.variant) for made in ids] == [(7, uuid.RFC_4122)] * 2
    assert ids[0] < ids[1]
    state_ids = [uuid.UUID(answer.flow_run.state.id) for answer in (first, second)]
    assert state_ids[0] < state_ids[1]


def test_database_run_on_executor(database: Database) -> None:
    async def main() -> tuple[str, str]:
        run = await database.run(
            database.repository.create_flow_run,
            flow_runs_pb2.CreateFlowRunRequest(flow_name="async"),
        )
        with pytest.raises(ServiceError):
            await database.run(
                database.repository.get_flow_run,
                flow_runs_pb2.GetFlowRunRequest(flow_run_id=str(uuid.uuid4())),
            )
        thread = await database.run(lambda: threading.current_thread().name)
        return run.flow_run.flow_name, thread

    flow_name, thread = asyncio.run(main())
    assert flow_name == "async"
    assert thread.startswith("headwater-db")


def test_prune_request_log(database: Database, repository: Repository) -> None:
    run = new_run(repository, request_id=str(uuid.uuid4()))
    propose(repository, run.id, RUNNING, transition_id=str(uuid.uuid4()))
    assert count(database, schema.request_log) == 2

    assert repository.prune_request_log(older_than_seconds=3600) == 0
    time.sleep(0.01)
    assert repository.prune_request_log(older_than_seconds=0) == 2
    assert count(database, schema.request_log) == 0


def test_pruning_keeps_the_answers_stored_after_the_cutoff(
    database: Database, repository: Repository
) -> None:
    """Pruning removes exactly the answers older than the cutoff (on SQLite by rowid, without
    an index on create_time) and the kept ones still replay."""
    older = [new_run(repository, request_id=str(uuid.uuid4())) for _ in range(5)]
    time.sleep(0.05)
    boundary = time.time()
    time.sleep(0.05)
    newer_ids = [str(uuid.uuid4()) for _ in range(7)]
    newer = [new_run(repository, request_id=request_id) for request_id in newer_ids]
    assert len(older) == 5
    assert count(database, schema.request_log) == 12

    assert repository.prune_request_log(older_than_seconds=time.time() - boundary) == 5
    assert count(database, schema.request_log) == 7
    for request_id, run in zip(newer_ids, newer, strict=True):
        assert new_run(repository, request_id=request_id).id == run.id  # replayed, not new
    assert repository.prune_request_log(older_than_seconds=3600) == 0
    assert repository.prune_request_log(older_than_seconds=-1) == 7
    assert repository.prune_request_log(older_than_seconds=-1) == 0  # an empty log


def test_a_request_id_and_a_transition_id_share_one_key_space(repository: Repository) -> None:
    """One UUID names one request, whichever field carries it: reusing a create's request_id
    as a proposal's transition_id is refused, naming the field the proposal got wrong."""
    shared = str(uuid.uuid4())
    run = new_run(repository, request_id=shared)
    error = error_of(propose, repository, run.id, RUNNING, transition_id=shared)  # type: ignore[arg-type]
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations[0].field == "transition_id"
    assert shared in error.violations[0].description


def test_in_memory_sqlite_works_for_throwaway_use() -> None:
    db = Database.open("sqlite://")
    try:
        run = new_run(db.repository)
        assert propose(db.repository, run.id, RUNNING).result.decision == ACCEPT
        got = db.repository.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id))
        assert got.flow_run.state.type == RUNNING
    finally:
        db.close()


def _in_parallel(url: str, calls: int, fn) -> list[object]:  # type: ignore[no-untyped-def]
    """Run ``fn(repository)`` from ``calls`` threads at once, each with its own Database."""
    databases = [Database.open(url) for _ in range(calls)]
    barrier = threading.Barrier(calls)
    outcomes: list[object] = []
    lock = threading.Lock()

    def worker(db: Database) -> None:
        barrier.wait()
        try:
            outcome: object = fn(db.repository)
        except ServiceError as error:
            outcome = error
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(db,)) for db in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in databases:
        db.close()
    return outcomes


def test_concurrent_creates_register_the_flow_once(
    database_url: str, repository: Repository
) -> None:
    outcomes = _in_parallel(database_url, 4, lambda repo: new_run(repo, "shared-flow"))

    assert len({run.flow_id for run in outcomes}) == 1  # type: ignore[attr-defined]
    flows = repository.list_flows(flows_pb2.ListFlowsRequest(name="shared-flow")).flows
    assert len(flows) == 1


def test_concurrent_idempotency_key_creates_one_run(
    database: Database, database_url: str, repository: Repository
) -> None:
    repository.create_flow(flows_pb2.CreateFlowRequest(name="keyed"))
    outcomes = _in_parallel(
        database_url, 4, lambda repo: new_run(repo, "keyed", idempotency_key="k-1")
    )

    runs = [o for o in outcomes if isinstance(o, flow_runs_pb2.FlowRun)]
    errors = [o for o in outcomes if isinstance(o, ServiceError)]
    assert len(runs) == 1
    assert len(errors) == 3
    assert all(e.code == grpc.StatusCode.ALREADY_EXISTS for e in errors)
    assert all(e.metadata["existing_flow_run_id"] == runs[0].id for e in errors)
    assert count(database, schema.flow_runs) == 1


def test_concurrent_request_id_replays(
    database: Database, database_url: str, repository: Repository
) -> None:
    request = flow_runs_pb2.CreateFlowRunRequest(flow_name="replayed", request_id=str(uuid.uuid4()))
    outcomes = _in_parallel(database_url, 3, lambda repo: repo.create_flow_run(request))

    assert all(o == outcomes[0] for o in outcomes), outcomes
    assert count(database, schema.flow_runs) == 1


def test_close_leaves_the_sqlite_wal_truncated(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database.open(f"sqlite:///{path}")
    wal = Path(f"{path}-wal")
    try:
        new_run(db.repository)
        assert wal.stat().st_size > 0
    finally:
        db.close()
    assert not wal.exists() or wal.stat().st_size == 0

"""The storage calls the scheduler builds on, on real SQLite and PostgreSQL databases.

``list_schedules_to_fill``, ``create_scheduled_runs`` and ``delete_future_auto_scheduled_runs``
are the contract with the scheduler loop: each (schedule, time) becomes one run however often
it is asked for, paused deployments and inactive schedules are skipped, and changing, removing
or pausing a schedule removes the runs it created ahead that have not started, and only those.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from headwater.v1 import deployments_pb2, flow_runs_pb2, flows_pb2, schedules_pb2, states_pb2
from headwater_server.errors import ServiceError
from headwater_server.storage._deployment_runs import ScheduledRun, ScheduleToFill
from sync_application import SyncApplication

D = deployments_pb2
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _every(seconds: int, **fields: Any) -> schedules_pb2.DeploymentSchedule:
    return schedules_pb2.DeploymentSchedule(
        schedule=schedules_pb2.Schedule(
            interval=schedules_pb2.IntervalSchedule(interval=duration_pb2.Duration(seconds=seconds))
        ),
        **fields,
    )


def _deployment(application: SyncApplication, **fields: Any) -> D.Deployment:
    fields.setdefault("flow_name", f"etl-{uuid.uuid4().hex[:6]}")
    fields.setdefault("name", "nightly")
    request = D.CreateDeploymentRequest(deployment=D.Deployment(**fields))
    return application.create_deployment(request).deployment  # type: ignore[no-any-return]


def _fill(repository: Any, **kwargs: Any) -> list[ScheduleToFill]:
    return list(repository.list_schedules_to_fill(**kwargs))


def _runs(application: SyncApplication, deployment_id: str) -> list[flow_runs_pb2.FlowRun]:
    listed = application.list_flow_runs(
        flow_runs_pb2.ListFlowRunsRequest(
            page_size=1000, filter=flow_runs_pb2.FlowRunFilter(deployment_id=deployment_id)
        )
    )
    return list(listed.flow_runs)


def _times(schedule: ScheduleToFill, count: int, step: int = 60) -> list[ScheduledRun]:
    return [ScheduledRun(schedule, T0 + timedelta(seconds=step * i)) for i in range(count)]


def test_active_schedules_of_unpaused_deployments_are_listed_with_merged_parameters(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(
        application,
        parameters_json='{"day": "mon", "limit": 5}',
        tags=["etl"],
        schedules=[
            _every(60, parameters_json='{"limit": 7}'),
            _every(120, active=False),
            _every(300, max_scheduled_runs=3),
        ],
    )
    _deployment(application, schedules=[_every(60)], paused=True)

    listed = _fill(repository)
    assert [s.deployment_id for s in listed] == [deployment.id, deployment.id]
    by_interval = {s.schedule.interval.interval.seconds: s for s in listed}
    assert set(by_interval) == {60, 300}
    first = by_interval[60]
    assert first.schedule_id == deployment.schedules[0].id
    assert first.flow_id == deployment.flow_id and first.flow_name == deployment.flow_name
    assert first.deployment_name == "nightly"
    assert first.tags == ("etl",)
    assert first.parameters_json == '{"day": "mon", "limit": 7}'
    assert by_interval[300].max_scheduled_runs == 3
    assert by_interval[300].parameters_json == '{"day": "mon", "limit": 5}'


def test_listing_pages_by_schedule_id(application: SyncApplication, repository: Any) -> None:
    _deployment(application, schedules=[_every(60 + i) for i in range(5)])
    page = _fill(repository, limit=2)
    seen = [s.schedule_id for s in page]
    while len(page) == 2:
        page = _fill(repository, limit=2, after_schedule_id=page[-1].schedule_id)
        seen += [s.schedule_id for s in page]
    assert len(seen) == 5 and seen == sorted(seen)


def test_each_schedule_time_becomes_one_run_however_often_it_is_asked_for(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(application, schedules=[_every(60)], tags=["nightly"])
    (schedule,) = _fill(repository)

    created = repository.create_scheduled_runs(_times(schedule, 3))
    again = repository.create_scheduled_runs(_times(schedule, 5))

    assert len(created) == 3 and len(again) == 2
    runs = _runs(application, deployment.id)
    assert len(runs) == 5
    for run in runs:
        assert run.state.type == states_pb2.STATE_TYPE_SCHEDULED
        assert run.auto_scheduled
        assert run.deployment_id == deployment.id
        assert run.flow_id == deployment.flow_id
        assert list(run.tags) == ["nightly"]
        assert run.idempotency_key.startswith(f"scheduled {schedule.schedule_id} 2030-01-01T")
    due = sorted(r.state.scheduled_time.ToDatetime(tzinfo=UTC) for r in runs)
    assert due == [T0 + timedelta(minutes=i) for i in range(5)]
    assert all(r.expected_start_time == r.state.scheduled_time for r in runs)


def test_runs_of_a_schedule_that_changed_since_it_was_listed_are_not_created(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(application, schedules=[_every(60)])
    (stale,) = _fill(repository)
    changed = _every(90, id=deployment.schedules[0].id)
    application.update_deployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(schedules=[changed]),
            update_mask=field_mask_pb2.FieldMask(paths=["schedules"]),
        )
    )
    assert repository.create_scheduled_runs(_times(stale, 3)) == []
    (fresh,) = _fill(repository)
    assert fresh.schedule.interval.interval.seconds == 90
    assert len(repository.create_scheduled_runs(_times(fresh, 3))) == 3


def test_pausing_deletes_the_runs_created_ahead_and_resuming_lists_the_schedules_again(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(application, schedules=[_every(60)])
    (schedule,) = _fill(repository)
    auto = repository.create_scheduled_runs(_times(schedule, 4))
    # One of them started: it is no longer "ahead" and stays.
    application.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=auto[0].id,
            state=states_pb2.State(type=states_pb2.STATE_TYPE_PENDING),
            force=True,  # before its scheduled time
        )
    )
    manual = application.create_flow_run_from_deployment(
        D.CreateFlowRunFromDeploymentRequest(deployment_id=deployment.id)
    ).flow_run

    paused = application.pause_deployment(D.PauseDeploymentRequest(deployment_id=deployment.id))

    assert paused.deployment.paused
    assert {r.id for r in _runs(application, deployment.id)} == {auto[0].id, manual.id}
    assert _fill(repository) == []
    assert repository.create_scheduled_runs(_times(schedule, 2)) == []
    application.resume_deployment(D.ResumeDeploymentRequest(deployment_id=deployment.id))
    assert [s.schedule_id for s in _fill(repository)] == [schedule.schedule_id]


def test_changing_one_schedule_deletes_only_its_runs_ahead(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(application, schedules=[_every(60), _every(3600)])
    first, second = sorted(_fill(repository), key=lambda s: s.schedule.interval.interval.seconds)
    repository.create_scheduled_runs(_times(first, 3) + _times(second, 2, step=3600))
    kept = [
        r.id for r in _runs(application, deployment.id) if second.schedule_id in r.idempotency_key
    ]

    application.update_deployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(
                schedules=[_every(30, id=first.schedule_id), _every(3600, id=second.schedule_id)]
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["schedules"]),
        )
    )

    assert sorted(r.id for r in _runs(application, deployment.id)) == sorted(kept)


def test_removing_a_schedule_or_deleting_by_id_removes_its_runs_ahead(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(application, schedules=[_every(60), _every(120)])
    one, two = _fill(repository)
    repository.create_scheduled_runs(_times(one, 2) + _times(two, 2))

    deleted = repository.delete_future_auto_scheduled_runs(schedule_id=one.schedule_id)
    assert len(deleted) == 2
    application.update_deployment(
        D.UpdateDeploymentRequest(
            deployment_id=deployment.id,
            deployment=D.Deployment(schedules=[]),
            update_mask=field_mask_pb2.FieldMask(paths=["schedules"]),
        )
    )
    assert _runs(application, deployment.id) == []
    assert (
        application.get_deployment(
            D.GetDeploymentRequest(deployment_id=deployment.id)
        ).deployment.schedules
        == []
    )


def test_deleting_a_deployment_keeps_its_runs_that_are_not_ahead(
    application: SyncApplication, repository: Any
) -> None:
    deployment = _deployment(application, schedules=[_every(60)])
    (schedule,) = _fill(repository)
    repository.create_scheduled_runs(_times(schedule, 3))
    manual = application.create_flow_run_from_deployment(
        D.CreateFlowRunFromDeploymentRequest(deployment_id=deployment.id)
    ).flow_run

    application.delete_deployment(D.DeleteDeploymentRequest(deployment_id=deployment.id))

    assert [r.id for r in _runs(application, deployment.id)] == [manual.id]
    with pytest.raises(ServiceError) as caught:
        application.get_deployment(D.GetDeploymentRequest(deployment_id=deployment.id))
    assert caught.value.reason == "DEPLOYMENT_NOT_FOUND"
    assert repository.delete_future_auto_scheduled_runs(deployment_id=deployment.id) == []


def test_concurrent_scheduler_passes_create_each_run_once(
    application: SyncApplication, repository: Any
) -> None:
    # Two replicas' loops asking for the same runs at the same moment: the unique index makes
    # the second insert of each (schedule, time) do nothing, on SQLite and PostgreSQL.
    import threading

    deployment = _deployment(application, schedules=[_every(60)])
    (schedule,) = _fill(repository)
    wanted = _times(schedule, 40)
    created: list[int] = []
    start = threading.Barrier(4)

    def loop() -> None:
        start.wait()
        created.append(len(repository.create_scheduled_runs(wanted)))

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(created) == 40
    runs = _runs(application, deployment.id)
    assert len(runs) == 40
    assert len({r.idempotency_key for r in runs}) == 40


def test_concurrent_creates_of_one_name_make_one_deployment(
    application: SyncApplication,
) -> None:
    # The uniqueness check and the insert race on PostgreSQL; the loser gets ALREADY_EXISTS
    # naming the winner, never a raw IntegrityError.
    import threading

    flow = f"etl-{uuid.uuid4().hex[:6]}"
    application.create_flow(flows_pb2.CreateFlowRequest(name=flow))
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def create() -> None:
        start.wait()
        try:
            outcomes.append(_deployment(application, flow_name=flow, name="raced").id)
        except ServiceError as error:
            outcomes.append(error.reason)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o != "DEPLOYMENT_ALREADY_EXISTS"]
    assert len(winners) == 1 and outcomes.count("DEPLOYMENT_ALREADY_EXISTS") == 3, outcomes

"""The scheduler's passes over real deployments, on SQLite and PostgreSQL.

Each test drives passes directly (``Scheduler.run_once``); the loop inside a real server, and two
servers racing on one PostgreSQL, are in tests/integration/test_scheduler_api.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, field_mask_pb2
from headwater.v1 import deployments_pb2, flow_runs_pb2, schedules_pb2, states_pb2
from headwater_server.application.backend import Backend
from headwater_server.events import EventHub
from headwater_server.scheduling.scheduler import FillPolicy, Scheduler
from headwater_server.scheduling.schedules import due_times
from headwater_server.storage.database import Database
from sync_application import SyncApplication

D = deployments_pb2
S = schedules_pb2


def every(seconds: int, **fields: Any) -> S.DeploymentSchedule:
    interval = S.IntervalSchedule(interval=duration_pb2.Duration(seconds=seconds))
    return S.DeploymentSchedule(schedule=S.Schedule(interval=interval), **fields)


def cron(expression: str, timezone: str = "", **fields: Any) -> S.DeploymentSchedule:
    schedule = S.Schedule(cron=S.CronSchedule(cron=expression, timezone=timezone))
    return S.DeploymentSchedule(schedule=schedule, **fields)


def deployment(application: SyncApplication, *schedules: S.DeploymentSchedule) -> D.Deployment:
    request = D.CreateDeploymentRequest(
        deployment=D.Deployment(
            flow_name=f"etl-{uuid.uuid4().hex[:6]}",
            name="nightly",
            parameters_json='{"day": "today"}',
            schedules=schedules,
        )
    )
    return application.create_deployment(request).deployment  # type: ignore[no-any-return]


def runs(application: SyncApplication, deployment_id: str) -> list[flow_runs_pb2.FlowRun]:
    listed = application.list_flow_runs(
        flow_runs_pb2.ListFlowRunsRequest(
            page_size=1000, filter=flow_runs_pb2.FlowRunFilter(deployment_id=deployment_id)
        )
    )
    return sorted(listed.flow_runs, key=lambda run: run.expected_start_time.ToDatetime())


def starts(found: list[flow_runs_pb2.FlowRun]) -> list[datetime]:
    return [run.expected_start_time.ToDatetime(tzinfo=UTC) for run in found]


def replace_schedules(
    application: SyncApplication, found: D.Deployment, *schedules: S.DeploymentSchedule
) -> None:
    """UpdateDeployment with these schedules (those with an id change that schedule)."""
    application.update_deployment(
        D.UpdateDeploymentRequest(
            deployment_id=found.id,
            deployment=D.Deployment(schedules=schedules),
            update_mask=field_mask_pb2.FieldMask(paths=["schedules"]),
        )
    )


def scheduler(application: SyncApplication, **policy: Any) -> Scheduler:
    return Scheduler(application.backend, FillPolicy(**policy))


def run_pass(scheduler: Scheduler, now: datetime) -> int:
    return asyncio.run(scheduler.run_once(now))


# A fixed moment on the hour, years ahead: nothing else touches runs scheduled after it.
NOW = datetime(2031, 5, 1, tzinfo=UTC)


def test_a_pass_creates_the_wanted_runs_once(application: SyncApplication) -> None:
    hourly = deployment(application, every(3600))
    one = scheduler(application)

    assert run_pass(one, NOW) == 3  # at least three, and all within the hour (just one)

    found = runs(application, hourly.id)
    assert starts(found) == due_times(hourly.schedules[0].schedule, NOW, limit=3)
    for run in found:
        assert run.state.type == states_pb2.STATE_TYPE_SCHEDULED
        assert run.auto_scheduled
        assert run.deployment_id == hourly.id
        assert run.parameters_json == '{"day": "today"}'
        assert run.state.scheduled_time == run.expected_start_time
    # Again, and from a second scheduler (another replica) that remembers nothing: no new run.
    assert run_pass(one, NOW) == 0
    assert run_pass(scheduler(application), NOW) == 0
    assert len(runs(application, hourly.id)) == 3


def test_runs_within_the_minimum_time_ahead_all_exist_up_to_the_maximum(
    application: SyncApplication,
) -> None:
    every_minute = deployment(application, cron("* * * * *"))
    capped = deployment(application, cron("* * * * *", max_scheduled_runs=5))
    run_pass(scheduler(application, min_ahead=timedelta(minutes=30), max_runs=100), NOW)
    assert len(runs(application, every_minute.id)) == 31  # every minute of the next 30
    assert len(runs(application, capped.id)) == 5  # its own maximum

    far = deployment(application, cron("0 0 1 1 *"))  # yearly: three runs, years ahead
    run_pass(scheduler(application, max_ahead=timedelta(days=3 * 366)), NOW)
    assert len(runs(application, far.id)) == 3
    nearer = deployment(application, cron("0 0 1 1 *"))
    run_pass(scheduler(application, max_ahead=timedelta(days=400)), NOW)
    assert len(runs(application, nearer.id)) == 1  # none beyond the maximum time ahead


def test_as_time_passes_new_runs_are_added_and_old_ones_kept(
    application: SyncApplication,
) -> None:
    hourly = deployment(application, every(3600))
    one = scheduler(application, min_runs=3, max_runs=3)
    run_pass(one, NOW)
    first = starts(runs(application, hourly.id))
    later = NOW + timedelta(hours=1, minutes=30)
    assert run_pass(one, later) == 2  # the 2 h run exists; 3 h and 4 h are new
    assert starts(runs(application, hourly.id)) == sorted(
        set(first) | set(due_times(hourly.schedules[0].schedule, later, limit=3))
    )


def test_pausing_removes_runs_ahead_and_resuming_creates_them_once_again(
    application: SyncApplication,
) -> None:
    minutely = deployment(application, every(60))
    one = scheduler(application)
    assert run_pass(one, NOW) == 61  # every minute of the next hour, both ends included
    backend = application.backend
    from headwater_server.application import deployments

    asyncio.run(
        deployments.pause_deployment(backend, D.PauseDeploymentRequest(deployment_id=minutely.id))
    )
    assert runs(application, minutely.id) == []
    assert run_pass(one, NOW) == 0  # paused: nothing
    asyncio.run(
        deployments.resume_deployment(backend, D.ResumeDeploymentRequest(deployment_id=minutely.id))
    )
    assert run_pass(one, NOW) == 61
    assert len(runs(application, minutely.id)) == 61


def test_a_started_run_is_not_created_again(application: SyncApplication) -> None:
    hourly = deployment(application, every(3600))
    one = scheduler(application)
    run_pass(one, NOW)
    first = runs(application, hourly.id)[0]
    application.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=first.id,
            state=states_pb2.State(type=states_pb2.STATE_TYPE_CANCELLED),
        )
    )
    assert run_pass(one, NOW) == 0
    assert run_pass(scheduler(application), NOW) == 0
    assert runs(application, hourly.id)[0].id == first.id


def test_changing_a_schedule_replaces_its_runs_ahead(application: SyncApplication) -> None:
    changing = deployment(application, every(3600))
    one = scheduler(application)
    run_pass(one, NOW)
    changed = every(7200)
    changed.id = changing.schedules[0].id
    replace_schedules(application, changing, changed)
    assert run_pass(one, NOW) == 3
    assert starts(runs(application, changing.id)) == due_times(changed.schedule, NOW, limit=3)


def marks(application: SyncApplication, found: D.Deployment) -> list[datetime | None]:
    """How far ahead each of the deployment's schedules has its runs, as the scheduler noted."""
    from headwater_server.storage.convert import us_to_datetime
    from headwater_server.storage.schema import deployment_schedules
    from sqlalchemy import select

    table = deployment_schedules
    with application.backend.db.engine.connect() as conn:
        rows = conn.execute(
            select(table.c.scheduled_until)
            .where(table.c.deployment_id == found.id)
            .order_by(table.c.position)
        ).scalars()
        return [us_to_datetime(value) for value in rows]


def test_each_schedule_notes_how_far_ahead_its_runs_exist(application: SyncApplication) -> None:
    hourly = deployment(application, every(3600))
    assert marks(application, hourly) == [None]  # new: nothing known
    one = scheduler(application, min_runs=3, max_runs=3)
    run_pass(one, NOW)
    assert marks(application, hourly) == [starts(runs(application, hourly.id))[-1]]

    later = NOW + timedelta(hours=1, minutes=30)
    assert run_pass(one, later) == 2
    assert marks(application, hourly) == [later + timedelta(minutes=150)]  # the 4 h run
    # Pausing deletes the runs ahead and forgets the mark; resuming starts from nothing known.
    backend = application.backend
    from headwater_server.application import deployments

    asyncio.run(
        deployments.pause_deployment(backend, D.PauseDeploymentRequest(deployment_id=hourly.id))
    )
    assert marks(application, hourly) == [None]
    asyncio.run(
        deployments.resume_deployment(backend, D.ResumeDeploymentRequest(deployment_id=hourly.id))
    )
    assert run_pass(one, later) == 3
    assert marks(application, hourly) == [later + timedelta(minutes=150)]


def test_a_pass_creates_only_the_runs_after_the_mark(application: SyncApplication) -> None:
    """The pass trusts the mark instead of reading the runs: a run deleted one by one is not
    made again, since its time was scheduled once already (a pause or a change of the
    schedule is what makes runs anew)."""
    minutely = deployment(application, every(60))
    one = scheduler(application)
    assert run_pass(one, NOW) == 61
    second = runs(application, minutely.id)[1]
    application.delete_flow_run(flow_runs_pb2.DeleteFlowRunRequest(flow_run_id=second.id))
    assert run_pass(one, NOW + timedelta(minutes=2)) == 2  # minutes 61 and 62 only
    assert run_pass(scheduler(application), NOW + timedelta(minutes=2)) == 0  # a new replica
    assert second.expected_start_time not in [
        r.expected_start_time for r in runs(application, minutely.id)
    ]


def test_a_schedule_edited_while_its_runs_exist_gets_runs_of_its_new_times_only(
    application: SyncApplication,
) -> None:
    edited = deployment(application, every(600), every(3600))
    one = scheduler(application)
    run_pass(one, NOW)  # every 10 minutes: 7 within the hour; hourly: 3
    ten, hourly = edited.schedules
    # The ten-minute schedule's run at NOW is done with (cancelled) before the edit.
    [first] = [r for r in runs(application, edited.id)[:2] if ten.id in r.idempotency_key]
    cancelled = application.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=first.id, state=states_pb2.State(type=states_pb2.STATE_TYPE_CANCELLED)
        )
    )
    assert cancelled.result.decision == states_pb2.DECISION_ACCEPT
    later = NOW + timedelta(minutes=5)
    changed = every(900)  # every 15 minutes instead of 10
    changed.id = ten.id
    replace_schedules(application, edited, changed, hourly)  # the hourly one unchanged
    assert marks(application, edited)[0] is None  # changed: its runs ahead went
    assert marks(application, edited)[1] is not None  # unchanged: its runs and mark stay

    # 15, 30, 45 and 60 minutes past; and the hourly one's third hour, as time moved on.
    assert run_pass(one, later) == 5
    assert run_pass(scheduler(application), later) == 0  # and nothing twice
    by_schedule: dict[str, list[datetime]] = {}
    for run in runs(application, edited.id):
        schedule_id = run.idempotency_key.split()[1]
        by_schedule.setdefault(schedule_id, []).append(run.expected_start_time.ToDatetime(UTC))
    assert by_schedule[hourly.id] == [NOW + timedelta(hours=h) for h in range(4)]
    # The run that ended under the old schedule stays; the new times follow it.
    started = first.expected_start_time.ToDatetime(UTC)
    assert by_schedule[ten.id] == sorted(
        {started} | {NOW + timedelta(minutes=m) for m in (15, 30, 45, 60)}
    )
    assert marks(application, edited)[0] == NOW + timedelta(hours=1)


def test_a_pass_over_a_schedule_changed_since_it_was_listed_creates_nothing(
    application: SyncApplication,
) -> None:
    """A replica that listed the schedule before an edit neither creates runs of the old
    definition nor moves the mark of the new one."""
    from headwater_server.storage._deployment_runs import ScheduledRun

    changing = deployment(application, every(3600))
    repository = application.backend.db.repository
    [listed] = [
        found
        for found in repository.list_schedules_to_fill(limit=10_000)
        if found.deployment_id == changing.id
    ]
    changed = every(7200)
    changed.id = changing.schedules[0].id
    replace_schedules(application, changing, changed)
    assert repository.create_scheduled_runs([ScheduledRun(listed, NOW)]) == []
    assert runs(application, changing.id) == []
    assert marks(application, changing) == [None]


def test_inactive_schedules_create_nothing(application: SyncApplication) -> None:
    off = deployment(application, every(60, active=False), every(3600))
    run_pass(scheduler(application), NOW)
    assert len(runs(application, off.id)) == 3  # the hourly one only


def test_daylight_saving_is_followed_by_the_runs_created(application: SyncApplication) -> None:
    nine = deployment(application, cron("0 9 * * *", "America/New_York"))
    now = datetime(2030, 3, 8, 12, tzinfo=UTC)  # 07:00 EST; clocks spring forward on Sunday
    run_pass(scheduler(application, min_runs=4), now)
    # Friday and Saturday at 09:00 EST, Sunday and Monday at 09:00 EDT.
    assert [t.hour for t in starts(runs(application, nine.id))] == [14, 14, 13, 13]


def test_two_schedulers_racing_create_every_run_once(database_url: str) -> None:
    """Two replicas' schedulers, each with its own database connections, pass at once."""
    first, second = Database.open(database_url), Database.open(database_url)
    try:
        application = SyncApplication(first)
        deployments = [deployment(application, every(60)) for _ in range(3)]

        async def race(moment: datetime) -> list[int]:
            one = Scheduler(Backend(first, EventHub(_no_polling)))
            other = Scheduler(Backend(second, EventHub(_no_polling)))
            return list(await asyncio.gather(one.run_once(moment), other.run_once(moment)))

        # Each pass wants every minute of the hour ahead: 61 runs per deployment at first,
        # then the minutes the window moved on.
        for minutes, expected in ((0, 61), (7, 7), (61, 54), (62, 1)):
            created = asyncio.run(race(NOW + timedelta(minutes=minutes)))
            assert sum(created) == 3 * expected
        for each in deployments:
            found = starts(runs(application, each.id))
            assert len(found) == len(set(found)) == 123  # minutes 0 to 122
    finally:
        first.close()
        second.close()


async def _no_polling(flow_run_id: str) -> int:
    raise AssertionError("nothing waits in these tests")

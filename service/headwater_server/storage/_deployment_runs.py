"""The runs deployments create: on request, many at once, and ahead of time for the scheduler.

Every run of a deployment is created SCHEDULED with the deployment's flow, tags and id. Runs a
schedule creates carry the idempotency key ``"scheduled <schedule id> <time>"``
(:func:`~headwater_server.storage.values.scheduled_key`), unique per deployment through the
index ``ix_flow_runs_deployment_id_idempotency_key``: that is what makes each (schedule, time)
exist once however many scheduler loops (one per service replica) try to create it.

The scheduler (``headwater_server.scheduling``) calls, through ``Database.run``:

- :meth:`DeploymentRunsMixin.list_schedules_to_fill` for the schedules to create runs for, each
  with how far ahead its runs exist already (``scheduled_until``);
- :meth:`DeploymentRunsMixin.create_scheduled_runs` with the due times it computed after that
  mark, which it moves on in the same transaction;
- :meth:`DeploymentRunsMixin.delete_future_auto_scheduled_runs` when it must drop runs created
  ahead (the deployment operations here already do so when a schedule changes or goes, and when
  a deployment is paused or deleted).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from headwater.v1 import deployments_pb2, flow_runs_pb2, schedules_pb2, states_pb2
from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from headwater_server import errors
from headwater_server.storage import convert
from headwater_server.storage._base import InitialState
from headwater_server.storage._deployments import (
    DeploymentsMixin,
    _delete_future_auto_scheduled_runs,
)
from headwater_server.storage._flow_runs import FlowRunsMixin
from headwater_server.storage.names import generate_run_name
from headwater_server.storage.schema import (
    deployment_schedules,
    deployments,
    flow_run_states,
    flow_runs,
)
from headwater_server.storage.statements import FLOW_RUN
from headwater_server.storage.values import canonical_id, new_id, optional_id, scheduled_key

#: Checks and merges one requested run's parameters: ``(deployment, index, parameters_json)``
#: to the run's parameters as JSON text, raising INVALID_ARGUMENT for what the schema refuses.
ParameterCheck = Callable[[deployments_pb2.Deployment, int, str], str]

_SCHEDULED = states_pb2.State(type=states_pb2.STATE_TYPE_SCHEDULED)


@dataclass(frozen=True, slots=True)
class ScheduleToFill:
    """An active schedule of a deployment that is not paused: what its runs are created with.

    Attributes:
        schedule_id: The DeploymentSchedule's id.
        deployment_id: Its deployment's id.
        deployment_name: Its deployment's name.
        flow_id: The deployment's flow.
        flow_name: The flow's name.
        schedule: When runs are due.
        max_scheduled_runs: How many future runs to keep created; 0 means the service default.
        parameters_json: The runs' parameters: the deployment's defaults with the schedule's
            own merged over them (a JSON object).
        tags: The runs' tags (the deployment's).
        work_pool_name: The deployment's work pool ("" for a served deployment).
        work_queue_name: The queue in that pool ("" when there is no pool).
        update_time_us: When the schedule last changed (microseconds since the epoch); runs
            are created only while it is unchanged, so a run for an outdated schedule is not.
        scheduled_until_us: The due time up to which every run of the schedule exists
            (microseconds since the epoch), or None when that is not known (new, changed,
            resumed, or its runs ahead deleted).
    """

    schedule_id: str
    deployment_id: str
    deployment_name: str
    flow_id: str
    flow_name: str
    schedule: schedules_pb2.Schedule
    max_scheduled_runs: int
    parameters_json: str
    tags: tuple[str, ...]
    work_pool_name: str
    work_queue_name: str
    update_time_us: int
    scheduled_until_us: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """One run the scheduler wants: ``schedule``'s run due at ``scheduled_time`` (aware)."""

    schedule: ScheduleToFill
    scheduled_time: datetime


class DeploymentRunsMixin(DeploymentsMixin):
    """Runs of deployments: on request (one or many), and the scheduler's storage calls."""

    def create_flow_runs_from_deployment(
        self,
        req: deployments_pb2.BatchCreateFlowRunsFromDeploymentRequest,
        check: ParameterCheck,
        method: str = "BatchCreateFlowRunsFromDeployment",
        trace_context: Mapping[str, str] | None = None,
    ) -> deployments_pb2.BatchCreateFlowRunsFromDeploymentResponse:
        """Create ``req.runs`` SCHEDULED, all or none, with parameters ``check`` returns.

        ``trace_context`` is the caller's W3C trace context, stored with every run.

        ``method`` names the RPC for the request_id store (the single create stores its answer
        in this batch form too). A paused deployment refuses (FAILED_PRECONDITION); a reused
        idempotency key is ALREADY_EXISTS naming the run that holds it.
        """
        deployment_id = canonical_id(req.deployment_id)
        key = self._request_key(req.request_id)
        response_type = deployments_pb2.BatchCreateFlowRunsFromDeploymentResponse
        stored_trace = convert.dump_trace_context(trace_context)
        flow_id = ""
        flow_name = ""
        try:
            with self._write() as conn:
                if key and (replay := self._replay(conn, key, method, "", response_type)):
                    return replay
                deployment = self._deployment(conn, deployment_id)
                flow_id, flow_name = deployment.flow_id, deployment.flow_name
                if deployment.paused:
                    raise errors.deployment_paused(deployment.id, self._full_name(deployment))
                now = convert.now_us()
                rows = []
                for index, run in enumerate(req.runs):
                    scheduled = (
                        convert.timestamp_to_us(run.scheduled_time)
                        if run.HasField("scheduled_time")
                        else now
                    )
                    rows.append(
                        self._run_values(
                            deployment_id=deployment.id,
                            flow_id=flow_id,
                            flow_name=flow_name,
                            name=run.name,
                            parameters_json=check(deployment, index, run.parameters_json),
                            tags=[
                                *deployment.tags,
                                *(t for t in run.tags if t not in deployment.tags),
                            ],
                            idempotency_key=run.idempotency_key or None,
                            scheduled_us=scheduled,
                            now=now,
                            trace_context=stored_trace,
                            job_variables_json=run.job_variables_json or None,
                        )
                    )
                self._insert_runs(conn, rows)
                response = response_type(
                    flow_runs=[convert.flow_run_message(values) for values in rows]
                )
                if key:
                    self._remember(conn, key, method, deployment.id, response)
                return response
        except IntegrityError:
            replay = self._replay_after_conflict(key, method, response_type)
            if replay is not None:
                return replay
            with self._read() as conn:
                for run in req.runs:
                    if not run.idempotency_key:
                        continue
                    error = FlowRunsMixin._idempotency_key_taken(
                        conn, flow_id, flow_name, run.idempotency_key
                    )
                    if error is not None:
                        raise error from None
            raise

    @staticmethod
    def _full_name(deployment: deployments_pb2.Deployment) -> str:
        return f"{deployment.flow_name}/{deployment.name}"

    def _run_values(
        self,
        *,
        deployment_id: str,
        flow_id: str,
        flow_name: str,
        name: str,
        parameters_json: str,
        tags: Sequence[str],
        idempotency_key: str | None,
        scheduled_us: int,
        now: int,
        trace_context: str | None = None,
        job_variables_json: str | None = None,
    ) -> dict[str, Any]:
        """The flow_runs row of a deployment's new SCHEDULED run."""
        initial = self._initial_state("flow run", _SCHEDULED)._replace(scheduled_time=scheduled_us)
        return {
            "id": new_id(),
            "flow_id": flow_id,
            "flow_name": flow_name,
            "name": name or generate_run_name(),
            "flow_version": "",
            "deployment_id": deployment_id,
            "parent_flow_run_id": None,
            "parent_task_run_id": None,
            "idempotency_key": idempotency_key,
            "expected_start_time": scheduled_us,
            "parameters_json": parameters_json,
            "tags": convert.dump_tags(tags),
            "trace_context": trace_context,
            "job_variables_json": job_variables_json,
            **convert.policy_columns(states_pb2.RunPolicy()),
            **self._initial_run_values(initial, now),
        }

    def _insert_runs(
        self, conn: Connection, rows: list[dict[str, Any]], *, skip_existing: bool = False
    ) -> list[dict[str, Any]]:
        """Insert runs with their first (SCHEDULED) history rows; returns the rows inserted.

        With ``skip_existing`` a run whose (deployment, idempotency key) exists is skipped
        (INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike); otherwise it fails
        the whole insert with IntegrityError.
        """
        if not rows:
            return []
        if skip_existing:
            if self._dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            else:
                from sqlalchemy.dialects.postgresql import (  # type: ignore[assignment]
                    insert as dialect_insert,
                )
            statement = dialect_insert(flow_runs).on_conflict_do_nothing()
            inserted = {
                row.id for row in conn.execute(statement.returning(flow_runs.c.id), rows).all()
            }
            rows = [values for values in rows if values["id"] in inserted]
        else:
            conn.execute(insert(flow_runs), rows)
        if rows:
            conn.execute(
                insert(flow_run_states),
                [
                    self._initial_state_row(
                        FLOW_RUN,
                        values,
                        InitialState(
                            values["state_type"],
                            values["state_name"],
                            values["state_message"],
                            values["scheduled_time"],
                        ),
                        _SCHEDULED,
                    )
                    for values in rows
                ],
            )
        return rows

    # ------------------------------------------------------------------ the scheduler's

    def list_schedules_to_fill(
        self, *, after_schedule_id: str = "", limit: int = 1000
    ) -> list[ScheduleToFill]:
        """Active schedules of deployments that are not paused, ordered by schedule id.

        Page through all of them by passing the last one's ``schedule_id`` as
        ``after_schedule_id`` until fewer than ``limit`` come back.
        """
        stmt = (
            select(
                deployment_schedules.c.id.label("schedule_id"),
                deployment_schedules.c.schedule_json,
                deployment_schedules.c.max_scheduled_runs,
                deployment_schedules.c.parameters_json.label("schedule_parameters"),
                deployment_schedules.c.update_time,
                deployment_schedules.c.scheduled_until,
                deployments.c.id.label("deployment_id"),
                deployments.c.name.label("deployment_name"),
                deployments.c.flow_id,
                deployments.c.flow_name,
                deployments.c.parameters_json,
                deployments.c.tags,
                deployments.c.work_pool_name,
                deployments.c.work_queue_name,
            )
            .select_from(
                deployment_schedules.join(
                    deployments, deployments.c.id == deployment_schedules.c.deployment_id
                )
            )
            .where(deployment_schedules.c.active.is_(True), deployments.c.paused.is_(False))
            .order_by(deployment_schedules.c.id)
            .limit(limit)
        )
        if after_schedule_id:
            stmt = stmt.where(deployment_schedules.c.id > after_schedule_id)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            ScheduleToFill(
                schedule_id=row.schedule_id,
                deployment_id=row.deployment_id,
                deployment_name=row.deployment_name,
                flow_id=row.flow_id,
                flow_name=row.flow_name,
                schedule=_parsed_schedule(row.schedule_json),
                max_scheduled_runs=row.max_scheduled_runs,
                parameters_json=_run_parameters(row.parameters_json, row.schedule_parameters),
                tags=_parsed_tags(row.tags),
                work_pool_name=row.work_pool_name,
                work_queue_name=row.work_queue_name,
                update_time_us=row.update_time,
                scheduled_until_us=row.scheduled_until,
            )
            for row in rows
        ]

    def create_scheduled_runs(self, runs: Sequence[ScheduledRun]) -> list[flow_runs_pb2.FlowRun]:
        """Create the SCHEDULED runs asked for, each exactly once, in one transaction, and
        move each schedule's ``scheduled_until`` on to the last of its runs asked for.

        Ask for a schedule's runs in time order and without gaps after its mark: the mark
        promises that every run up to it exists. A run whose (schedule, time) exists already is
        skipped, not an error, so two scheduler loops may ask for the same runs. So is a run of
        a schedule that, since it was listed, changed, was turned off or removed, or whose
        deployment was paused or deleted. On PostgreSQL the deployments are share-locked and
        then the schedule rows locked, in that order (a pause takes the same order: its
        deployment, then deleting runs created ahead and clearing the marks), so a concurrent
        pause cannot interleave, and two replicas take turns on a schedule's mark. Returns the
        runs created, with ``auto_scheduled`` set.
        """
        if not runs:
            return []
        schedule_ids = sorted({run.schedule.schedule_id for run in runs})
        with self._write() as conn:
            if self._dialect != "sqlite":
                conn.execute(
                    select(deployments.c.id)
                    .where(deployments.c.id.in_(sorted({r.schedule.deployment_id for r in runs})))
                    .order_by(deployments.c.id)
                    .with_for_update(read=True)
                ).all()
            current = {
                row.id: row.update_time
                for row in conn.execute(
                    select(deployment_schedules.c.id, deployment_schedules.c.update_time)
                    .select_from(
                        deployment_schedules.join(
                            deployments, deployments.c.id == deployment_schedules.c.deployment_id
                        )
                    )
                    .where(
                        deployment_schedules.c.id.in_(schedule_ids),
                        deployment_schedules.c.active.is_(True),
                        deployments.c.paused.is_(False),
                    )
                    .order_by(deployment_schedules.c.id)
                    .with_for_update(of=deployment_schedules, key_share=True)
                ).all()
            }
            now = convert.now_us()
            rows = []
            marks: dict[str, int] = {}
            for run in runs:
                schedule = run.schedule
                if current.get(schedule.schedule_id) != schedule.update_time_us:
                    continue
                due = convert.datetime_to_us(run.scheduled_time)
                assert due is not None
                marks[schedule.schedule_id] = max(due, marks.get(schedule.schedule_id, due))
                rows.append(
                    self._run_values(
                        deployment_id=schedule.deployment_id,
                        flow_id=schedule.flow_id,
                        flow_name=schedule.flow_name,
                        name="",
                        parameters_json=schedule.parameters_json,
                        tags=schedule.tags,
                        idempotency_key=scheduled_key(schedule.schedule_id, due),
                        scheduled_us=due,
                        now=now,
                    )
                )
            # One order for every replica: two loops inserting the same keys in different orders
            # could deadlock on PostgreSQL's unique-index locks.
            rows.sort(key=lambda values: (values["deployment_id"], values["idempotency_key"]))
            created = self._insert_runs(conn, rows, skip_existing=True)
            if marks:
                _mark_scheduled_until(conn, marks)
        return [convert.flow_run_message(values) for values in created]

    def delete_future_auto_scheduled_runs(
        self, *, deployment_id: str = "", schedule_id: str = ""
    ) -> list[str]:
        """Delete the runs a schedule (or any schedule of a deployment) created that have not
        started (still SCHEDULED, never run); returns their ids. Give one of the two ids."""
        schedule = optional_id(schedule_id)
        deployment = optional_id(deployment_id)
        if schedule is None and deployment is None:
            raise ValueError("Give deployment_id or schedule_id.")
        with self._write() as conn:
            return _delete_future_auto_scheduled_runs(conn, deployment, schedule)


# Every pass lists every active schedule, and parsing their stored JSON again each time cost
# most of a pass (75 ms of CPU for 1,000 schedules). The texts rarely change, so their parsed
# forms are kept, keyed by the texts themselves (never stale). Callers only read them.
_PARSED_TEXTS = 16_384


@functools.lru_cache(maxsize=_PARSED_TEXTS)
def _parsed_schedule(schedule_json: str) -> schedules_pb2.Schedule:
    """The Schedule stored as ``schedule_json`` (shared: do not modify it)."""
    schedule = schedules_pb2.Schedule()
    json_format.Parse(schedule_json, schedule)
    return schedule


@functools.lru_cache(maxsize=_PARSED_TEXTS)
def _run_parameters(deployment_parameters: str | None, schedule_parameters: str | None) -> str:
    """A scheduled run's parameters: the deployment's defaults, the schedule's merged over."""
    parameters = json.loads(deployment_parameters or "{}")
    parameters.update(json.loads(schedule_parameters or "{}"))
    return json.dumps(parameters)


@functools.lru_cache(maxsize=_PARSED_TEXTS)
def _parsed_tags(tags: str) -> tuple[str, ...]:
    return tuple(json.loads(tags))


def _mark_scheduled_until(conn: Connection, marks: Mapping[str, int]) -> None:
    """Move each schedule's ``scheduled_until`` on to its mark (never back: a replica that
    passed a little earlier asks for less)."""
    until = deployment_schedules.c.scheduled_until
    conn.execute(
        update(deployment_schedules)
        .where(
            deployment_schedules.c.id == bindparam("schedule_id"),
            or_(until.is_(None), until < bindparam("mark")),
        )
        .values(scheduled_until=bindparam("mark")),
        [{"schedule_id": key, "mark": mark} for key, mark in sorted(marks.items())],
    )

"""Deployments and their schedules: create, read, list, update, delete, pause and resume.

The runs a deployment creates (on request, in bulk, and for the scheduler) are in
``_deployment_runs``; changing, turning off or removing a schedule, pausing and deleting a
deployment delete the runs its schedules created ahead that have not started, through
``_delete_future_auto_scheduled_runs`` there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from headwater.v1 import deployments_pb2, schedules_pb2, states_pb2
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from headwater_server import errors
from headwater_server.errors import invalid_argument, not_found
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage._work_pools import WorkPoolsMixin
from headwater_server.storage.schema import deployment_schedules, deployments, flow_runs
from headwater_server.storage.statements import (
    SELECT_FLOW_BY_ID,
    SELECT_FLOW_BY_NAME,
    insert_flow_if_new,
    keyset_before,
    tags_condition,
)
from headwater_server.storage.values import (
    SCHEDULED_KEY_PREFIX,
    canonical_id,
    new_id,
)

M = TypeVar("M", deployments_pb2.PauseDeploymentResponse, deployments_pb2.ResumeDeploymentResponse)

# The deployment fields UpdateDeployment copies as they are (the others need resolving).
_PLAIN_FIELDS = (
    "description",
    "version",
    "entrypoint",
    "parameters_json",
    "parameter_schema_json",
    "concurrency_limit",
    "collision_strategy",
    "job_variables_json",
)


class DeploymentsMixin(WorkPoolsMixin, RepositoryBase):
    """Deployments: create (registering the flow by name), read, list, update, delete, pause."""

    def create_deployment(
        self, req: deployments_pb2.CreateDeploymentRequest
    ) -> deployments_pb2.CreateDeploymentResponse:
        """Create a deployment (ALREADY_EXISTS when its flow has one of that name)."""
        d = req.deployment
        key = self._request_key(req.request_id)
        method = "CreateDeployment"
        flow_id = canonical_id(d.flow_id) if d.flow_id else None
        try:
            with self._write() as conn:
                if key and (
                    replay := self._replay(
                        conn, key, method, "", deployments_pb2.CreateDeploymentResponse
                    )
                ):
                    return replay
                flow_id, flow_name = self._flow_of(conn, flow_id, d.flow_name)
                self._refuse_taken_deployment_name(conn, flow_id, flow_name, d.name)
                now = convert.now_us()
                values: dict[str, Any] = {
                    "id": new_id(),
                    "flow_id": flow_id,
                    "flow_name": flow_name,
                    "name": d.name,
                    "tags": convert.dump_tags(d.tags),
                    "code_json": convert.message_json(d.code),
                    "enforce_parameter_schema": (
                        d.enforce_parameter_schema
                        if d.HasField("enforce_parameter_schema")
                        else True
                    ),
                    "paused": d.paused,
                    "create_time": now,
                    "update_time": now,
                    **{field: getattr(d, field) for field in _PLAIN_FIELDS},
                    **self._work_queue_columns(conn, d.work_pool_name, d.work_queue_name),
                }
                values["parameters_json"] = d.parameters_json or "{}"
                conn.execute(insert(deployments), values)
                self._insert_schedules(conn, values["id"], list(enumerate(d.schedules)), now)
                response = deployments_pb2.CreateDeploymentResponse(
                    deployment=self._deployment(conn, values["id"])
                )
                if key:
                    self._remember(conn, key, method, values["id"], response)
                return response
        except IntegrityError:
            replay = self._replay_after_conflict(
                key, method, deployments_pb2.CreateDeploymentResponse
            )
            if replay is not None:
                return replay
            with self._read() as conn:
                if flow_id is None:
                    flow_id = conn.execute(SELECT_FLOW_BY_NAME, {"name": d.flow_name}).scalar()
                if flow_id is not None:
                    self._refuse_taken_deployment_name(conn, flow_id, d.flow_name, d.name)
            raise

    def _flow_of(self, conn: Connection, flow_id: str | None, flow_name: str) -> tuple[str, str]:
        """The (id, name) of a deployment's flow; a flow named for the first time is registered."""
        if flow_id is not None:
            row = conn.execute(SELECT_FLOW_BY_ID, {"id": flow_id}).first()
            if row is None:
                raise not_found("flow", flow_id)
            return row.id, row.name
        row = conn.execute(SELECT_FLOW_BY_NAME, {"name": flow_name}).first()
        if row is None:
            conn.execute(
                insert_flow_if_new(self._dialect),
                {"id": new_id(), "name": flow_name, "tags": "[]", "create_time": convert.now_us()},
            )
            row = conn.execute(SELECT_FLOW_BY_NAME, {"name": flow_name}).first()
        assert row is not None  # inserted just now, or by a concurrent twin
        return row.id, row.name

    @staticmethod
    def _refuse_taken_deployment_name(
        conn: Connection, flow_id: str, flow_name: str, name: str
    ) -> None:
        existing = conn.execute(
            select(deployments.c.id).where(
                deployments.c.flow_id == flow_id, deployments.c.name == name
            )
        ).scalar()
        if existing is not None:
            raise errors.already_exists(
                "deployment",
                existing,
                f"Flow '{flow_name}' already has a deployment named '{name}' (id '{existing}'). "
                "Change it with UpdateDeployment, or choose another name.",
            )

    def _work_queue_columns(
        self, conn: Connection, pool_name: str, queue_name: str
    ) -> dict[str, Any]:
        """The work pool and queue columns of a deployment (the queue is created when new)."""
        if not pool_name:
            return {"work_queue_id": None, "work_pool_name": "", "work_queue_name": ""}
        queue_id, queue_name = self._queue_for(conn, pool_name, queue_name)
        return {
            "work_queue_id": queue_id,
            "work_pool_name": pool_name,
            "work_queue_name": queue_name,
        }

    @staticmethod
    def _schedule_values(entry: schedules_pb2.DeploymentSchedule) -> dict[str, Any]:
        """The stored columns of a schedule that a change compares (id and times aside)."""
        return {
            "schedule_json": convert.message_json(entry.schedule),
            "active": entry.active if entry.HasField("active") else True,
            "max_scheduled_runs": entry.max_scheduled_runs,
            "parameters_json": entry.parameters_json or "{}",
        }

    def _schedule_row(
        self,
        deployment_id: str,
        position: int,
        entry: schedules_pb2.DeploymentSchedule,
        now: int,
    ) -> dict[str, Any]:
        """A new deployment_schedules row for ``entry`` at ``position`` in the list."""
        return {
            "id": new_id(),
            "deployment_id": deployment_id,
            "position": position,
            "create_time": now,
            "update_time": now,
            **self._schedule_values(entry),
        }

    def _insert_schedules(
        self,
        conn: Connection,
        deployment_id: str,
        entries: Sequence[tuple[int, schedules_pb2.DeploymentSchedule]],
        now: int,
    ) -> None:
        """Insert new schedules, each with its position in the deployment's list."""
        rows = [self._schedule_row(deployment_id, i, entry, now) for i, entry in entries]
        if rows:
            conn.execute(insert(deployment_schedules), rows)

    # ------------------------------------------------------------------ reads

    def _deployment(self, conn: Connection, deployment_id: str) -> deployments_pb2.Deployment:
        """One deployment with its schedules (NOT_FOUND when it does not exist)."""
        row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).first()
        if row is None:
            raise not_found("deployment", deployment_id)
        return self._deployment_messages(conn, [row])[0]

    @staticmethod
    def _deployment_messages(
        conn: Connection, rows: Sequence[Any]
    ) -> list[deployments_pb2.Deployment]:
        """Deployments from their rows, their schedules read in one query."""
        ids = [row.id for row in rows]
        schedules: dict[str, list[schedules_pb2.DeploymentSchedule]] = {i: [] for i in ids}
        if ids:
            for entry in conn.execute(
                select(deployment_schedules)
                .where(deployment_schedules.c.deployment_id.in_(ids))
                .order_by(deployment_schedules.c.deployment_id, deployment_schedules.c.position)
            ).all():
                schedules[entry.deployment_id].append(
                    convert.deployment_schedule_message(entry._mapping)
                )
        return [convert.deployment_message(row._mapping, schedules[row.id]) for row in rows]

    def get_deployment(
        self, req: deployments_pb2.GetDeploymentRequest
    ) -> deployments_pb2.GetDeploymentResponse:
        """One deployment by id, or by "flow-name/deployment-name" (checked to hold a '/')."""
        with self._read() as conn:
            if req.WhichOneof("deployment") == "deployment_id":
                deployment_id = canonical_id(req.deployment_id)
            else:
                flow_name, _, name = req.name.partition("/")
                found = conn.execute(
                    select(deployments.c.id).where(
                        deployments.c.flow_name == flow_name, deployments.c.name == name
                    )
                ).scalar()
                if found is None:
                    raise errors.not_found_by_name("deployment", req.name)
                deployment_id = found
            return deployments_pb2.GetDeploymentResponse(
                deployment=self._deployment(conn, deployment_id)
            )

    def list_deployments(
        self, req: deployments_pb2.ListDeploymentsRequest
    ) -> deployments_pb2.ListDeploymentsResponse:
        """Deployments, newest first, narrowed by the filter (conditions combine with AND)."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("deployments", req.page_token)
        f = req.filter
        stmt = select(deployments)
        if f.flow_name:
            stmt = stmt.where(deployments.c.flow_name == f.flow_name)
        if f.name:
            stmt = stmt.where(deployments.c.name == f.name)
        if f.work_pool_name:
            stmt = stmt.where(deployments.c.work_pool_name == f.work_pool_name)
        if f.HasField("paused"):
            stmt = stmt.where(deployments.c.paused == f.paused)
        for tag in f.tags:
            stmt = stmt.where(tags_condition(deployments.c.tags, tag, self._dialect))
        if after is not None:
            stmt = stmt.where(keyset_before(deployments.c.create_time, deployments.c.id, after))
        stmt = stmt.order_by(deployments.c.create_time.desc(), deployments.c.id.desc())
        with self._read() as conn:
            rows = conn.execute(stmt.limit(size + 1)).all()
            messages = self._deployment_messages(conn, rows[:size])
        return deployments_pb2.ListDeploymentsResponse(
            deployments=messages,
            next_page_token=pagination.next_page_token("deployments", rows, size),
        )

    # ------------------------------------------------------------------ changes

    def update_deployment(
        self,
        req: deployments_pb2.UpdateDeploymentRequest,
        check: Callable[[deployments_pb2.Deployment], None] | None = None,
    ) -> deployments_pb2.UpdateDeploymentResponse:
        """Change the fields in ``update_mask`` (paths checked by the application layer).

        ``check`` judges the deployment as changed, inside the transaction: what only the whole
        deployment can tell (do the defaults satisfy the parameter schema?) refuses the update.
        """
        deployment_id = canonical_id(req.deployment_id)
        d = req.deployment
        paths = set(req.update_mask.paths)
        now = convert.now_us()
        values: dict[str, Any] = {
            field: getattr(d, field) for field in _PLAIN_FIELDS if field in paths
        }
        if "enforce_parameter_schema" in paths:
            values["enforce_parameter_schema"] = d.enforce_parameter_schema
        if "parameters_json" in values:
            values["parameters_json"] = values["parameters_json"] or "{}"
        if "tags" in paths:
            values["tags"] = convert.dump_tags(d.tags)
        if "code" in paths:
            values["code_json"] = convert.message_json(d.code)
        values["update_time"] = now
        with self._write() as conn:
            current = self._deployment(conn, deployment_id)
            if paths & {"work_pool_name", "work_queue_name"}:
                pool = d.work_pool_name if "work_pool_name" in paths else current.work_pool_name
                queue = d.work_queue_name if "work_queue_name" in paths else ""
                if "work_queue_name" in paths and not pool:
                    raise invalid_argument(
                        "deployment.work_queue_name",
                        "needs a work pool: the deployment has none, so name one in "
                        "'deployment.work_pool_name' too.",
                    )
                values.update(self._work_queue_columns(conn, pool, queue))
            conn.execute(
                update(deployments).where(deployments.c.id == deployment_id).values(**values)
            )
            if "schedules" in paths:
                self._replace_schedules(conn, current, d.schedules, now)
            updated = self._deployment(conn, deployment_id)
            if check is not None:
                check(updated)  # raising rolls the change back
            return deployments_pb2.UpdateDeploymentResponse(deployment=updated)

    def _replace_schedules(
        self,
        conn: Connection,
        current: deployments_pb2.Deployment,
        entries: Sequence[schedules_pb2.DeploymentSchedule],
        now: int,
    ) -> None:
        """Make the stored schedules ``entries``: update those named by id, add the others,
        remove the rest. Runs created ahead by a schedule that changed or went are deleted."""
        stored = {entry.id: entry for entry in current.schedules}
        kept: set[str] = set()
        added: list[tuple[int, schedules_pb2.DeploymentSchedule]] = []
        for position, entry in enumerate(entries):
            if not entry.id:
                added.append((position, entry))
                continue
            schedule_id = canonical_id(entry.id)
            if schedule_id not in stored or schedule_id in kept:
                raise invalid_argument(
                    f"deployment.schedules[{position}].id",
                    f"'{entry.id}' is not one of this deployment's schedules"
                    + (" (or is listed twice)" if schedule_id in kept else "")
                    + "; leave it empty to add a new schedule.",
                )
            kept.add(schedule_id)
            new = self._schedule_values(entry)
            if new != self._schedule_values(stored[schedule_id]):
                _delete_future_auto_scheduled_runs(conn, current.id, schedule_id)
            conn.execute(
                update(deployment_schedules)
                .where(deployment_schedules.c.id == schedule_id)
                .values(position=position, update_time=now, **new)
            )
        for schedule_id in stored.keys() - kept:
            _delete_future_auto_scheduled_runs(conn, current.id, schedule_id)
            conn.execute(
                delete(deployment_schedules).where(deployment_schedules.c.id == schedule_id)
            )
        self._insert_schedules(conn, current.id, added, now)

    def delete_deployment(
        self, req: deployments_pb2.DeleteDeploymentRequest
    ) -> deployments_pb2.DeleteDeploymentResponse:
        """Delete a deployment and its runs created ahead that have not started."""
        deployment_id = canonical_id(req.deployment_id)
        with self._write() as conn:
            _delete_future_auto_scheduled_runs(conn, deployment_id)
            if (
                conn.execute(delete(deployments).where(deployments.c.id == deployment_id)).rowcount
                == 0
            ):
                raise not_found("deployment", deployment_id)
        return deployments_pb2.DeleteDeploymentResponse()

    def pause_deployment(
        self, req: deployments_pb2.PauseDeploymentRequest
    ) -> deployments_pb2.PauseDeploymentResponse:
        """Pause: the deployment's runs created ahead that have not started are deleted."""
        return self._set_paused(
            req.deployment_id,
            req.request_id,
            "PauseDeployment",
            deployments_pb2.PauseDeploymentResponse,
            paused=True,
        )

    def resume_deployment(
        self, req: deployments_pb2.ResumeDeploymentRequest
    ) -> deployments_pb2.ResumeDeploymentResponse:
        """Resume: the scheduler creates the deployment's runs again."""
        return self._set_paused(
            req.deployment_id,
            req.request_id,
            "ResumeDeployment",
            deployments_pb2.ResumeDeploymentResponse,
            paused=False,
        )

    def _set_paused(
        self,
        raw_id: str,
        request_id: str,
        method: str,
        response_type: type[M],
        *,
        paused: bool,
    ) -> M:
        deployment_id = canonical_id(raw_id)
        key = self._request_key(request_id)
        with self._write() as conn:
            if key and (replay := self._replay(conn, key, method, deployment_id, response_type)):
                return replay
            changed = conn.execute(
                update(deployments)
                .where(deployments.c.id == deployment_id, deployments.c.paused != paused)
                .values(paused=paused, update_time=convert.now_us())
            ).rowcount
            if changed and paused:
                _delete_future_auto_scheduled_runs(conn, deployment_id)
            response = response_type(deployment=self._deployment(conn, deployment_id))
            if key:
                self._remember(conn, key, method, deployment_id, response)
            return response


def _delete_future_auto_scheduled_runs(
    conn: Connection, deployment_id: str | None, schedule_id: str | None = None
) -> list[str]:
    """Delete the runs a deployment's schedules (or one schedule) created that have not
    started: still SCHEDULED, never run. Returns their ids.

    A schedule's runs are those whose idempotency key starts with "scheduled <schedule id> ";
    the prefix is compared exactly (``substr``), since LIKE ignores case on SQLite. Without
    ``deployment_id`` (a schedule already removed) the runs are found by that prefix alone.

    The schedules forget how far ahead their runs exist (``scheduled_until``), so the scheduler
    offers all their wanted runs again once they are active: it creates only runs after that
    mark otherwise, and would leave the deleted ones out.
    """
    prefix = SCHEDULED_KEY_PREFIX + (f"{schedule_id} " if schedule_id else "")
    key = flow_runs.c.idempotency_key
    doomed = [
        flow_runs.c.state_type == states_pb2.STATE_TYPE_SCHEDULED,
        flow_runs.c.run_count == 0,
        key.is_not(None),
        _substr(key, len(prefix)) == prefix,
    ]
    if deployment_id is not None:
        doomed.append(flow_runs.c.deployment_id == deployment_id)
    else:
        doomed.append(flow_runs.c.deployment_id.is_not(None))
    deleted = conn.execute(delete(flow_runs).where(*doomed).returning(flow_runs.c.id)).all()
    forget = (
        deployment_schedules.c.id == schedule_id
        if schedule_id
        else deployment_schedules.c.deployment_id == deployment_id
    )
    conn.execute(
        update(deployment_schedules)
        .where(forget, deployment_schedules.c.scheduled_until.is_not(None))
        .values(scheduled_until=None)
    )
    return [row.id for row in deleted]


def _substr(column: Any, length: int) -> Any:
    return func.substr(column, 1, length)

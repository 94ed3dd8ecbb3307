"""Task runs: create, read, list, delete."""

from __future__ import annotations

from typing import Any

from headwater.v1 import task_runs_pb2
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from headwater_server import errors
from headwater_server.errors import not_found
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage._runs import read_run, read_run_page
from headwater_server.storage.schema import flow_runs, task_runs
from headwater_server.storage.statements import TASK_RUN
from headwater_server.storage.values import canonical_id, new_id, task_run_name


class TaskRunsMixin(RepositoryBase):
    """Task runs apart from state changes: create, read, list, delete."""

    def create_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """Create a task run in a flow run; (task_key, dynamic_key) is unique per flow run."""
        flow_run_id = canonical_id(req.flow_run_id)
        parameters = req.parameters_json or "{}"
        tags = convert.dump_tags(req.tags)
        retries = req.policy.retries
        delay = convert.duration_seconds(req.policy.retry_delay)
        initial = self._initial_state("task run", req.state)
        key = self._request_key(req.request_id)
        try:
            with self._write_raw() as conn:
                if key and (
                    replay := self._replay(
                        conn, key, "CreateTaskRun", "", task_runs_pb2.CreateTaskRunResponse
                    )
                ):
                    return replay
                now = convert.now_us()
                values = {
                    "id": new_id(),
                    "flow_run_id": flow_run_id,
                    "task_key": req.task_key,
                    "dynamic_key": req.dynamic_key,
                    "name": req.name or task_run_name(req.task_key, req.dynamic_key),
                    "cache_key": req.cache_key,
                    "parameters_json": parameters,
                    "tags": tags,
                    "policy_retries": retries,
                    "policy_retry_delay_seconds": delay,
                    **self._initial_run_values(initial, now),
                }
                # No existence checks first: the foreign key and the unique constraint catch
                # both mistakes, and the common case saves two round trips.
                conn.execute(self._raw_create.insert_task_run, values)
                state_payloads = self._insert_initial_state(
                    conn, TASK_RUN, values, initial, req.state
                )
                response = task_runs_pb2.CreateTaskRunResponse(
                    task_run=convert.task_run_message(values, *state_payloads)
                )
                if key:
                    self._remember(conn, key, "CreateTaskRun", values["id"], response)
                return response
        except (IntegrityError, self._fast.IntegrityError):
            replay = self._replay_after_conflict(
                key, "CreateTaskRun", task_runs_pb2.CreateTaskRunResponse
            )
            if replay is not None:
                return replay
            with self._read() as conn:
                self._require(conn, flow_runs, flow_run_id, "flow_run")
                existing = conn.execute(
                    select(task_runs.c.id).where(
                        task_runs.c.flow_run_id == flow_run_id,
                        task_runs.c.task_key == req.task_key,
                        task_runs.c.dynamic_key == req.dynamic_key,
                    )
                ).scalar()
            if existing is None:
                raise
            raise errors.already_exists(
                "task_run",
                existing,
                f"Flow run '{flow_run_id}' already has a task run for task_key "
                f"'{req.task_key}' and dynamic_key '{req.dynamic_key}': task run '{existing}'. "
                f"Use that task run, or pass another dynamic_key for a new call.",
            ) from None

    def get_task_run(
        self, req: task_runs_pb2.GetTaskRunRequest
    ) -> task_runs_pb2.GetTaskRunResponse:
        """One task run with its current state."""
        run_id = canonical_id(req.task_run_id)
        with self._read() as conn:
            return task_runs_pb2.GetTaskRunResponse(task_run=read_run(conn, TASK_RUN, run_id))

    def list_task_runs(
        self, req: task_runs_pb2.ListTaskRunsRequest
    ) -> task_runs_pb2.ListTaskRunsResponse:
        """Task runs in creation order, narrowed by the filter."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("task_runs", req.page_token)
        f = req.filter
        conditions: list[Any] = []
        if f.flow_run_id:
            conditions.append(task_runs.c.flow_run_id == canonical_id(f.flow_run_id))
        if f.state_types:
            conditions.append(task_runs.c.state_type.in_(list(f.state_types)))
        if f.task_key:
            conditions.append(task_runs.c.task_key == f.task_key)
        with self._read() as conn:
            runs, token = read_run_page(conn, TASK_RUN, conditions, after, size, newest_first=False)
        return task_runs_pb2.ListTaskRunsResponse(task_runs=runs, next_page_token=token)

    def delete_task_run(
        self, req: task_runs_pb2.DeleteTaskRunRequest
    ) -> task_runs_pb2.DeleteTaskRunResponse:
        """Delete a task run and its history."""
        run_id = canonical_id(req.task_run_id)
        with self._write() as conn:
            if conn.execute(delete(task_runs).where(task_runs.c.id == run_id)).rowcount == 0:
                raise not_found("task_run", run_id)
        return task_runs_pb2.DeleteTaskRunResponse()

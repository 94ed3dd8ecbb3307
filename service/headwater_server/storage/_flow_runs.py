"""Flow runs: create, read, list, update, delete, and their event log."""

from __future__ import annotations

from typing import Any

from headwater.v1 import flow_runs_pb2
from sqlalchemy import Connection, bindparam, delete, literal, select, update

from headwater_server import errors
from headwater_server.errors import ServiceError, not_found
from headwater_server.orchestration import rules
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import RepositoryBase
from headwater_server.storage._concurrency import ANY_KEY, SLOTS_FREED, free_slots_of_deleted
from headwater_server.storage._runs import read_run, read_run_page
from headwater_server.storage.fastpath import RawTransaction
from headwater_server.storage.names import generate_run_name
from headwater_server.storage.schema import (
    flow_run_states,
    flow_runs,
    logs,
    task_run_states,
    task_runs,
)
from headwater_server.storage.statements import FLOW_RUN, tags_condition
from headwater_server.storage.values import canonical_id, new_id, optional_id

# What event polling needs of a run: how far its log goes, and whether it can grow.
_PROGRESS = select(flow_runs.c.last_sequence, flow_runs.c.state_type).where(
    flow_runs.c.id == bindparam("id")
)


class FlowRunsMixin(RepositoryBase):
    """Flow runs apart from state changes: create, read, list, update, delete, events."""

    def create_flow_run(
        self, req: flow_runs_pb2.CreateFlowRunRequest, engine_id: str | None = None
    ) -> flow_runs_pb2.CreateFlowRunResponse:
        """Create a flow run (registering its flow by name if needed) in its initial state,
        owned by ``engine_id`` when an engine stream creates it (see `EnginesMixin`)."""
        which = req.WhichOneof("flow")
        flow_id = canonical_id(req.flow_id) if which == "flow_id" else None
        flow_name = req.flow_name if which == "flow_name" else None
        parameters = req.parameters_json or "{}"
        parent_flow_run_id = optional_id(req.parent_flow_run_id)
        parent_task_run_id = optional_id(req.parent_task_run_id)
        tags = convert.dump_tags(req.tags)
        initial = self._initial_state("flow run", req.state)
        key = self._request_key(req.request_id)
        idempotency_key = req.idempotency_key or None
        raw = self._raw_create
        try:
            with self._write_raw() as conn:
                if key and (
                    replay := self._replay(
                        conn, key, "CreateFlowRun", "", flow_runs_pb2.CreateFlowRunResponse
                    )
                ):
                    return replay
                flow_id, flow_name = self._resolve_flow(conn, flow_id, flow_name)
                for parent_id, exists, resource in (
                    (parent_flow_run_id, raw.flow_run_exists, "flow_run"),
                    (parent_task_run_id, raw.task_run_exists, "task_run"),
                ):
                    if parent_id is not None and conn.first(exists, {"id": parent_id}) is None:
                        raise not_found(resource, parent_id)
                now = convert.now_us()
                scheduled = initial.scheduled_time
                values = {
                    "id": new_id(),
                    "flow_id": flow_id,
                    "flow_name": flow_name,
                    "name": req.name or generate_run_name(),
                    "flow_version": req.flow_version,
                    "deployment_id": None,
                    "parent_flow_run_id": parent_flow_run_id,
                    "parent_task_run_id": parent_task_run_id,
                    "idempotency_key": idempotency_key,
                    "expected_start_time": scheduled if scheduled is not None else now,
                    "parameters_json": parameters,
                    "tags": tags,
                    "trace_context": convert.dump_trace_context(req.trace_context),
                    "job_variables_json": None,  # only a deployment's runs have them
                    **convert.policy_columns(req.policy),
                    **self._initial_run_values(initial, now),
                    "engine_id": engine_id,
                }
                # A reused idempotency_key is left to the unique constraint (answered below):
                # checking first would cost every create a query for the rare conflict.
                conn.execute(raw.insert_flow_run, values)
                state_payloads = self._insert_initial_state(
                    conn, FLOW_RUN, values, initial, req.state
                )
                response = flow_runs_pb2.CreateFlowRunResponse(
                    flow_run=convert.flow_run_message(values, *state_payloads)
                )
                if key:
                    self._remember(conn, key, "CreateFlowRun", values["id"], response)
                return response
        except self._fast.IntegrityError:
            replay = self._replay_after_conflict(
                key, "CreateFlowRun", flow_runs_pb2.CreateFlowRunResponse
            )
            if replay is not None:
                return replay
            if idempotency_key is not None and flow_id is not None:
                with self._read() as conn:
                    error = self._idempotency_key_taken(
                        conn, flow_id, flow_name or "", idempotency_key
                    )
                if error is not None:
                    raise error from None
            raise

    def _resolve_flow(
        self, conn: RawTransaction, flow_id: str | None, flow_name: str | None
    ) -> tuple[str, str]:
        """The (id, name) of the run's flow; a flow named for the first time is registered."""
        raw = self._raw_create
        if flow_id is not None:
            row = conn.first(raw.select_flow_by_id, {"id": flow_id})
            if row is None:
                raise not_found("flow", flow_id)
            return row["id"], row["name"]
        assert flow_name is not None
        row = conn.first(raw.select_flow_by_name, {"name": flow_name})
        if row is None:
            conn.execute(
                raw.insert_flow_if_new,
                {"id": new_id(), "name": flow_name, "tags": "[]", "create_time": convert.now_us()},
            )
            row = conn.first(raw.select_flow_by_name, {"name": flow_name})
        assert row is not None  # inserted just now, or by a concurrent twin
        return row["id"], row["name"]

    @staticmethod
    def _idempotency_key_taken(
        conn: Connection, flow_id: str, flow_name: str, idempotency_key: str
    ) -> ServiceError | None:
        """ALREADY_EXISTS naming the flow's run that holds ``idempotency_key``, if one does."""
        existing = conn.execute(
            select(flow_runs.c.id).where(
                flow_runs.c.flow_id == flow_id, flow_runs.c.idempotency_key == idempotency_key
            )
        ).scalar()
        if existing is None:
            return None
        return errors.already_exists(
            "flow_run",
            existing,
            f"Flow '{flow_name}' already has a run with idempotency_key "
            f"'{idempotency_key}': flow run '{existing}'. Use that run (GetFlowRun), or "
            f"choose another key for a new run.",
        )

    def get_flow_run(
        self, req: flow_runs_pb2.GetFlowRunRequest
    ) -> flow_runs_pb2.GetFlowRunResponse:
        """One flow run with its current state."""
        run_id = canonical_id(req.flow_run_id)
        with self._read() as conn:
            return flow_runs_pb2.GetFlowRunResponse(flow_run=read_run(conn, FLOW_RUN, run_id))

    def list_flow_runs(
        self, req: flow_runs_pb2.ListFlowRunsRequest
    ) -> flow_runs_pb2.ListFlowRunsResponse:
        """Flow runs, newest first, narrowed by the filter (conditions combine with AND)."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("flow_runs", req.page_token)
        f = req.filter
        conditions: list[Any] = []
        if f.flow_ids:
            ids = [canonical_id(v) for v in f.flow_ids]
            conditions.append(flow_runs.c.flow_id.in_(ids))
        if f.flow_name:
            conditions.append(flow_runs.c.flow_name == f.flow_name)
        if f.name:
            conditions.append(flow_runs.c.name == f.name)
        if f.deployment_id:
            conditions.append(flow_runs.c.deployment_id == canonical_id(f.deployment_id))
        if f.state_types:
            conditions.append(flow_runs.c.state_type.in_(list(f.state_types)))
        if f.parent_flow_run_id:
            parent = canonical_id(f.parent_flow_run_id)
            conditions.append(flow_runs.c.parent_flow_run_id == parent)
        for tag in f.tags:
            conditions.append(tags_condition(flow_runs.c.tags, tag, self._dialect))
        with self._read() as conn:
            runs, token = read_run_page(conn, FLOW_RUN, conditions, after, size, newest_first=True)
        return flow_runs_pb2.ListFlowRunsResponse(flow_runs=runs, next_page_token=token)

    def update_flow_run(
        self, req: flow_runs_pb2.UpdateFlowRunRequest
    ) -> flow_runs_pb2.UpdateFlowRunResponse:
        """Change a run's name, tags and/or retry policy, as listed in ``update_mask``."""
        run_id = canonical_id(req.flow_run_id)
        values: dict[str, Any] = {}
        for path in req.update_mask.paths:
            if path == "name":
                values["name"] = req.name
            elif path == "tags":
                values["tags"] = convert.dump_tags(req.tags)
            elif path == "policy":
                values.update(convert.policy_columns(req.policy))
        values["update_time"] = convert.now_us()
        with self._write() as conn:
            updated = conn.execute(
                update(flow_runs).where(flow_runs.c.id == run_id).values(**values)
            ).rowcount
            if updated == 0:
                raise not_found("flow_run", run_id)
            return flow_runs_pb2.UpdateFlowRunResponse(flow_run=read_run(conn, FLOW_RUN, run_id))

    def delete_flow_run(
        self, req: flow_runs_pb2.DeleteFlowRunRequest
    ) -> flow_runs_pb2.DeleteFlowRunResponse:
        """Delete a run with its history, task runs and logs."""
        run_id = canonical_id(req.flow_run_id)
        with self._write() as conn:
            # Its slots and its task runs' go in the same transaction: a deleted run never
            # keeps a slot taken.
            freed = free_slots_of_deleted(
                conn,
                select(task_runs.c.id)
                .where(task_runs.c.flow_run_id == run_id)
                .union_all(select(literal(run_id))),
            )
            if conn.execute(delete(flow_runs).where(flow_runs.c.id == run_id)).rowcount == 0:
                raise not_found("flow_run", run_id)
        if freed:
            self.announce([(SLOTS_FREED + ANY_KEY, 0)])
        return flow_runs_pb2.DeleteFlowRunResponse()

    def list_flow_run_events(
        self, req: flow_runs_pb2.ListFlowRunEventsRequest
    ) -> flow_runs_pb2.ListFlowRunEventsResponse:
        """Events after ``after_sequence``, oldest first (``wait`` is the caller's business).

        The log interleaves the run's own states, its task runs' states and the log lines of
        both, each numbered in the flow run's one sequence when it was stored.
        """
        run_id = canonical_id(req.flow_run_id)
        size = pagination.page_size(req.page_size)
        with self._read() as conn:
            run = self._progress_row(conn, run_id)
            own = conn.execute(
                select(flow_run_states)
                .where(
                    flow_run_states.c.flow_run_id == run_id,
                    flow_run_states.c.sequence > req.after_sequence,
                )
                .order_by(flow_run_states.c.sequence)
                .limit(size)
            ).all()
            # An engine's cancellation watch asks for the run's own states only.
            own_only = req.flow_run_states_only
            tasks = (
                []
                if own_only
                else conn.execute(
                    select(task_run_states, task_runs.c.name.label("task_run_name"))
                    .join(task_runs, task_runs.c.id == task_run_states.c.task_run_id)
                    .where(
                        task_run_states.c.flow_run_id == run_id,
                        task_run_states.c.flow_sequence > req.after_sequence,
                    )
                    .order_by(task_run_states.c.flow_sequence)
                    .limit(size)
                ).all()
            )
            lines = (
                []
                if own_only
                else conn.execute(
                    select(logs)
                    .where(logs.c.flow_run_id == run_id, logs.c.flow_sequence > req.after_sequence)
                    .order_by(logs.c.flow_sequence)
                    .limit(size)
                ).all()
            )
        merged = sorted(
            [(row.sequence, "state", row._mapping) for row in own]
            + [(row.flow_sequence, "task", row._mapping) for row in tasks]
            + [(row.flow_sequence, "log", row._mapping) for row in lines],
            key=lambda entry: entry[0],
        )[:size]
        response = flow_runs_pb2.ListFlowRunEventsResponse(last_sequence=run.last_sequence)
        for sequence, kind, m in merged:
            event = response.events.add(sequence=sequence, flow_run_id=run_id)
            if kind == "log":
                convert.set_timestamp(event.event_time, m["log_time"])
                event.log.CopyFrom(convert.log_message(m))
                continue
            convert.set_timestamp(event.event_time, m["create_time"])
            if kind == "task":
                changed = event.task_run_state_changed
                changed.task_run_id = m["task_run_id"]
                changed.task_run_name = m["task_run_name"]
                changed.state.CopyFrom(convert.state_message_from_row(m))
            else:
                event.state_changed.CopyFrom(convert.state_message_from_row(m))
        # A short page read everything stored after after_sequence (one snapshot): numbers up
        # to last_sequence without an event belonged to deleted task runs.
        seen = run.last_sequence if len(merged) < size else merged[-1][0]
        response.finished = rules.is_terminal(run.state_type) and seen >= run.last_sequence
        return response

    def get_flow_run_progress(self, flow_run_id: str) -> tuple[int, bool]:
        """``(last_sequence, finished)`` of a run: one indexed read, for change polling."""
        run_id = canonical_id(flow_run_id)
        with self._read() as conn:
            row = self._progress_row(conn, run_id)
        return row.last_sequence, rules.is_terminal(row.state_type)

    @staticmethod
    def _progress_row(conn: Connection, run_id: str) -> Any:
        """The run's ``last_sequence`` and ``state_type`` (NOT_FOUND when it does not exist)."""
        row = conn.execute(_PROGRESS, {"id": run_id}).first()
        if row is None:
            raise not_found("flow_run", run_id)
        return row

"""Task runs: create (and start at once), read, list, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headwater.v1 import states_pb2, task_runs_pb2
from sqlalchemy import Connection, delete, literal, select
from sqlalchemy.exc import IntegrityError

from headwater_server.errors import already_exists, not_found, shown
from headwater_server.orchestration import rules
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import InitialState
from headwater_server.storage._concurrency import ANY_KEY, SLOTS_FREED, free_slots_of_deleted
from headwater_server.storage._proposals import ProposalsMixin
from headwater_server.storage._runs import read_run, read_run_rows
from headwater_server.storage.fastpath import RawTransaction
from headwater_server.storage.schema import flow_runs, task_run_states, task_runs
from headwater_server.storage.statements import TASK_RUN
from headwater_server.storage.values import canonical_id, new_id, optional_id, task_run_name

# The proposal a create-and-start makes.
_RUNNING = states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING)


class TaskRunsMixin(ProposalsMixin):
    """Task runs apart from state changes: create (and start), read, list, delete.

    Built on :class:`ProposalsMixin` because a create may start the run in its transaction.
    """

    def create_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest, *, replayable: bool = True
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """Create a task run, and with ``start`` propose RUNNING in the same transaction.

        (flow_run_id, task_key, dynamic_key) is unique: a create that collides returns the
        existing run (``created`` false), as Prefect does. A run outside any flow (no
        flow_run_id) is never a duplicate: each such call is its own run.

        ``replayable=False``: the request cannot arrive again (see `DirectLane`), so its
        ``request_id`` is neither looked up nor logged for a resend to be answered from.
        """
        flow_run_id = optional_id(req.flow_run_id)
        chosen_id = optional_id(req.task_run_id)
        key = self._request_key(req.request_id) if replayable else None
        try:
            return self._insert_task_run(req, flow_run_id, chosen_id, key)
        except (IntegrityError, self._fast.IntegrityError):
            replay = self._replay_after_conflict(
                key, "CreateTaskRun", task_runs_pb2.CreateTaskRunResponse
            )
            if replay is not None:
                return replay
            with self._read() as conn:
                if flow_run_id is not None:
                    self._require(conn, flow_runs, flow_run_id, "flow_run")
                existing = None
                if chosen_id is not None:
                    existing = self._same_run_by_id(conn, req, flow_run_id, chosen_id)
                if existing is None:
                    existing = conn.execute(
                        select(task_runs.c.id).where(
                            task_runs.c.flow_run_id == flow_run_id,
                            task_runs.c.task_key == req.task_key,
                            task_runs.c.dynamic_key == req.dynamic_key,
                        )
                    ).scalar()
            if existing is None:
                raise
        return self._existing_task_run(req, existing)

    @staticmethod
    def _same_run_by_id(
        conn: Connection,
        req: task_runs_pb2.CreateTaskRunRequest,
        flow_run_id: str | None,
        chosen_id: str,
    ) -> str | None:
        """The run a client-chosen id names, when it is this request's run (a resent create).

        An id naming a run of another flow run, task key or dynamic key is a client mistake
        (two calls given one id): ALREADY_EXISTS rather than silently returning someone else's
        run. None when no run has the id (the conflict was the unique key).
        """
        found = conn.execute(
            select(task_runs.c.flow_run_id, task_runs.c.task_key, task_runs.c.dynamic_key).where(
                task_runs.c.id == chosen_id
            )
        ).first()
        if found is None:
            return None
        if tuple(found) != (flow_run_id, req.task_key, req.dynamic_key):
            raise already_exists(
                "task_run",
                chosen_id,
                f"Task run '{chosen_id}' already exists for another call (task "
                f"'{shown(found.task_key)}', dynamic key '{shown(found.dynamic_key)}'); choose "
                "a new UUID for every task run.",
            )
        return chosen_id

    def _insert_task_run(
        self,
        req: task_runs_pb2.CreateTaskRunRequest,
        flow_run_id: str | None,
        chosen_id: str | None,
        key: str | None,
    ) -> task_runs_pb2.CreateTaskRunResponse:
        initial = self._initial_state("task run", req.state)
        with self._write_raw(sequences=True) as conn:
            # No look-up of the request_id first: a resent create collides with the stored run
            # (its id or its unique key) or with its request_log row, and `create_task_run`
            # answers it from the log after that conflict.
            values, rows, response = self._new_task_run(conn, req, flow_run_id, chosen_id, initial)
            self._number_new_task_run(conn, values, rows)
            conn.execute(self._raw_create.insert_task_run, values)
            conn.execute_many(self._raw[TASK_RUN].insert_state, rows)
            if key:
                self._remember(conn, key, "CreateTaskRun", values["id"], response)
            return response

    def _new_task_run(
        self,
        conn: RawTransaction,
        req: task_runs_pb2.CreateTaskRunRequest,
        flow_run_id: str | None,
        chosen_id: str | None,
        initial: InitialState,
    ) -> tuple[Mapping[str, Any], list[dict[str, Any]], task_runs_pb2.CreateTaskRunResponse]:
        """A new task run decided in memory: its row's values, its history rows (not numbered
        yet) and the answer. Nothing is written (the caller stores them, see
        `_number_new_task_run`); a start's rules may read (a cache entry, a limit's slots).
        """
        expiration = (
            convert.timestamp_to_us(req.cache_expiration_time)
            if req.HasField("cache_expiration_time")
            else None
        )
        now = convert.now_us()
        values: Mapping[str, Any] = {
            "id": chosen_id or new_id(),
            "flow_run_id": flow_run_id,
            "task_key": req.task_key,
            "dynamic_key": req.dynamic_key,
            "name": req.name or task_run_name(req.task_key, req.dynamic_key),
            "cache_key": req.cache_key,
            "cache_expiration_time": expiration,
            "parameters_json": req.parameters_json or "{}",
            "tags": convert.dump_tags(req.tags),
            **convert.policy_columns(req.policy),
            **self._initial_run_values(initial, now),
        }
        # The run is decided in memory and written once, in its state after the start: the
        # run row, its history rows in one call, and the flow run's event numbers in one
        # update (three statements instead of six). No existence checks first: the flow run's
        # update and the unique constraint catch both mistakes.
        rows = [self._initial_state_row(TASK_RUN, values, initial, req.state)]
        response = task_runs_pb2.CreateTaskRunResponse(created=True)
        if req.start:
            result, run, values = self._decide_and_apply(
                conn,
                TASK_RUN,
                values,
                _RUNNING,
                rules.Proposal(type=rules.RUNNING),
                now,
                refresh_cache=req.refresh_cache,
                deferred=rows,
            )
            response.result.CopyFrom(result)
            response.task_run.CopyFrom(run)
        else:
            first = rows[0]
            response.task_run.CopyFrom(
                convert.task_run_message(values, first["result"], first["failure"])
            )
        return values, rows, response

    def _number_new_task_run(
        self, conn: RawTransaction, values: Mapping[str, Any], rows: list[dict[str, Any]]
    ) -> None:
        """Number a new task run's history rows in its flow run's event log."""
        flow_run_id = values["flow_run_id"]
        if flow_run_id is None:
            for row in rows:
                row["flow_run_id"] = row["flow_sequence"] = None
        else:
            sequence = self._flow_sequences(conn, flow_run_id, len(rows)) - len(rows)
            for row in rows:
                sequence += 1
                row["flow_run_id"] = flow_run_id
                row["flow_sequence"] = sequence
                conn.events.append((flow_run_id, sequence))

    def _existing_task_run(
        self, req: task_runs_pb2.CreateTaskRunRequest, task_run_id: str
    ) -> task_runs_pb2.CreateTaskRunResponse:
        """The answer to a create that names an existing run: that run (started if asked)."""
        if req.start:
            started = self.set_task_run_state(
                task_runs_pb2.SetTaskRunStateRequest(
                    task_run_id=task_run_id, state=_RUNNING, refresh_cache=req.refresh_cache
                )
            )
            return task_runs_pb2.CreateTaskRunResponse(
                task_run=started.task_run, result=started.result, created=False
            )
        with self._read() as conn:
            run = read_run(conn, TASK_RUN, task_run_id)
        return task_runs_pb2.CreateTaskRunResponse(task_run=run, created=False)

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
        """Task runs in creation order (or newest first), narrowed by the filter."""
        size = pagination.page_size(req.page_size)
        # Each order has its own token collection: a token resumes only the order it was made for.
        collection = "task_runs_newest" if req.newest_first else "task_runs"
        after = pagination.decode_token(collection, req.page_token)
        f = req.filter
        conditions: list[Any] = []
        if f.flow_run_id:
            conditions.append(task_runs.c.flow_run_id == canonical_id(f.flow_run_id))
        if f.state_types:
            conditions.append(task_runs.c.state_type.in_(list(f.state_types)))
        if f.task_key:
            conditions.append(task_runs.c.task_key == f.task_key)
        with self._read() as conn:
            rows, token = read_run_rows(
                conn,
                TASK_RUN,
                conditions,
                after,
                size,
                newest_first=req.newest_first,
                collection=collection,
            )
        # Filled in the response (no copy of each run), after the read transaction.
        response = task_runs_pb2.ListTaskRunsResponse(next_page_token=token)
        add = response.task_runs.add
        for m in rows:
            convert.fill_task_run(add(), m, m["payload_result"], m["payload_failure"])
        return response

    def list_task_run_states(
        self, req: task_runs_pb2.ListTaskRunStatesRequest
    ) -> task_runs_pb2.ListTaskRunStatesResponse:
        """A task run's states, oldest first (its own history, with or without a flow run)."""
        run_id = canonical_id(req.task_run_id)
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("task_run_states", req.page_token)
        stmt = select(task_run_states).where(task_run_states.c.task_run_id == run_id)
        if after is not None:
            stmt = stmt.where(task_run_states.c.sequence > after[0])
        stmt = stmt.order_by(task_run_states.c.sequence).limit(size + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows and after is None:
                exists = conn.execute(select(task_runs.c.id).where(task_runs.c.id == run_id))
                if exists.first() is None:
                    raise not_found("task_run", run_id)
        return task_runs_pb2.ListTaskRunStatesResponse(
            states=[convert.state_message_from_row(row._mapping) for row in rows[:size]],
            next_page_token=pagination.next_page_token(
                "task_run_states", rows, size, time_key="sequence"
            ),
        )

    def delete_task_run(
        self, req: task_runs_pb2.DeleteTaskRunRequest
    ) -> task_runs_pb2.DeleteTaskRunResponse:
        """Delete a task run and its history."""
        run_id = canonical_id(req.task_run_id)
        with self._write() as conn:
            freed = free_slots_of_deleted(conn, select(literal(run_id)))
            if conn.execute(delete(task_runs).where(task_runs.c.id == run_id)).rowcount == 0:
                raise not_found("task_run", run_id)
        if freed:
            self.announce([(SLOTS_FREED + ANY_KEY, 0)])
        return task_runs_pb2.DeleteTaskRunResponse()

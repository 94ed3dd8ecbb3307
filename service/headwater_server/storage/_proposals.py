"""State changes: proposals for flow runs and task runs, and cancellation (the hot path)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2

from headwater_server import errors
from headwater_server.errors import not_found
from headwater_server.orchestration import rules
from headwater_server.storage import convert
from headwater_server.storage._base import M
from headwater_server.storage._concurrency import ConcurrencyLimitsMixin, is_limited
from headwater_server.storage.fastpath import RawTransaction
from headwater_server.storage.statements import FLOW_RUN, TASK_RUN, RawStatements, RunKind
from headwater_server.storage.values import (
    canonical_id,
    free_text,
    new_id,
    optional_id,
    payloads,
    proposal_message,
)

# The two proposal requests differ only in the field naming the run (``RunKind.id_field``).
SetStateRequest = flow_runs_pb2.SetFlowRunStateRequest | task_runs_pb2.SetTaskRunStateRequest


class ProposalsMixin(ConcurrencyLimitsMixin):
    """Every change of a run's state: proposals judged by the rules, and cancellation."""

    def set_flow_run_state(
        self, req: flow_runs_pb2.SetFlowRunStateRequest
    ) -> flow_runs_pb2.SetFlowRunStateResponse:
        """Propose a flow run state; the decision is in the response (never an error)."""
        return self._set_state(FLOW_RUN, req, flow_runs_pb2.SetFlowRunStateResponse)

    def cancel_flow_run(
        self, req: flow_runs_pb2.CancelFlowRunRequest
    ) -> flow_runs_pb2.CancelFlowRunResponse:
        """Cancel a run: CANCELLED at once unless it runs (then CANCELLING for its engine)."""
        try:
            return self._cancel_flow_run(req)
        except self._fast.IntegrityError:
            # A concurrent twin (same request_id) committed first: answer as it did.
            replay = self._replay_after_conflict(
                self._request_key(req.request_id),
                "CancelFlowRun",
                flow_runs_pb2.CancelFlowRunResponse,
            )
            if replay is None:
                raise
            return replay

    def _cancel_flow_run(
        self, req: flow_runs_pb2.CancelFlowRunRequest
    ) -> flow_runs_pb2.CancelFlowRunResponse:
        run_id = canonical_id(req.flow_run_id)
        key = self._request_key(req.request_id)
        raw = self._raw[FLOW_RUN]
        with self._write_raw() as conn:
            current = conn.first(raw.lock_run, {"id": run_id, "key": key})
            if current is None:
                raise not_found("flow_run", run_id)
            if key and (
                replay := self._check_replay(
                    self._locked_replay(current),
                    key,
                    "CancelFlowRun",
                    run_id,
                    flow_runs_pb2.CancelFlowRunResponse,
                )
            ):
                return replay
            if rules.is_terminal(current["state_type"]):
                label = rules.default_state_name(current["state_type"])
                name = current["state_name"] or label
                shown = name if name == label else f"{name} ({label})"
                raise errors.failed_precondition(
                    "FLOW_RUN_ALREADY_FINISHED",
                    f"Flow run '{run_id}' already finished in state {shown}; there is nothing "
                    "to cancel.",
                    resource_type="flow_run",
                    resource_name=run_id,
                )
            target = rules.cancellation_target(current["state_type"])
            if target is None:
                run = convert.flow_run_message(current, *self._payload(conn, raw, current))
            else:
                stored = rules.StoredState(
                    type=target,
                    name=rules.default_state_name(target),
                    message=free_text(req.reason) or "Cancelled by request.",
                )
                values = self._apply(conn, FLOW_RUN, raw, current, stored, False, None, None, False)
                run = convert.flow_run_message(values)
            response = flow_runs_pb2.CancelFlowRunResponse(flow_run=run)
            if key:
                self._remember(conn, key, "CancelFlowRun", run_id, response)
            return response

    def set_task_run_state(
        self, req: task_runs_pb2.SetTaskRunStateRequest, *, replayable: bool = True
    ) -> task_runs_pb2.SetTaskRunStateResponse:
        """Propose a task run state; the decision is in the response (never an error).

        ``replayable=False``: the proposal cannot arrive again (see `DirectLane`), so its
        ``transition_id`` is neither looked up nor logged for a resend to be answered from.
        """
        return self._set_state(
            TASK_RUN, req, task_runs_pb2.SetTaskRunStateResponse, replayable=replayable
        )

    # ------------------------------------------------------------------ state proposals

    def _set_state(
        self,
        kind: RunKind,
        req: SetStateRequest,
        response_type: type[M],
        *,
        replayable: bool = True,
    ) -> M:
        """:meth:`_set_state_locked`, answering a concurrent twin's stored response."""
        key = self._request_key(req.transition_id) if replayable else None
        try:
            return self._set_state_locked(kind, req, response_type, key)
        except self._fast.IntegrityError:
            replay = self._replay_after_conflict(key, kind.method, response_type)
            if replay is None:
                raise
            return replay

    def _set_state_locked(
        self, kind: RunKind, req: SetStateRequest, response_type: type[M], key: str | None
    ) -> M:
        """The transactional proposal shared by flow runs and task runs.

        ``key``: the transition's request-log key, or None when it is not logged. Returns the
        stored response for a replayed transition, otherwise a new ``response_type`` holding
        the decision and the run as it now is.
        """
        run_id = canonical_id(getattr(req, kind.id_field))
        state = req.state
        expected_state_id = optional_id(req.expected_state_id)
        proposed_scheduled = (
            convert.timestamp_to_us(state.scheduled_time)
            if state.HasField("scheduled_time")
            else None
        )
        proposal = rules.Proposal(
            type=state.type,
            name=state.name,
            message=proposal_message(state),
            scheduled_time=convert.us_to_datetime(proposed_scheduled),
            expected_state_id=expected_state_id or "",
            force=req.force,
        )
        raw = self._raw[kind]
        with self._write_raw(sequences=kind is TASK_RUN) as conn:
            # One statement locks the run and looks up the transition's stored answer. SQLite's
            # BEGIN IMMEDIATE serialises twins completely; on PostgreSQL a twin that commits
            # while we wait for the lock is not in our join (the join keeps the statement's
            # snapshot), so our request_log INSERT fails and _set_state replays its answer.
            current = conn.first(raw.lock_run, {"id": run_id, "key": key})
            if current is None:
                raise not_found(kind.resource, run_id)
            if key is not None:
                replay = self._check_replay(
                    self._locked_replay(current), key, kind.method, run_id, response_type
                )
                if replay is not None:
                    return replay
            now = convert.now_us()
            refresh = False
            if isinstance(req, task_runs_pb2.SetTaskRunStateRequest):
                refresh = req.refresh_cache
                if req.cache_key:
                    current = self._set_cache_key(conn, current, req)
            result, run, _ = self._decide_and_apply(
                conn, kind, current, state, proposal, now, refresh_cache=refresh
            )
            response: M = response_type(result=result, **{kind.response_field: run})
            if key is not None:
                self._remember(conn, key, kind.method, run_id, response)
            return response

    def _set_cache_key(
        self,
        conn: RawTransaction,
        current: Mapping[str, Any],
        req: task_runs_pb2.SetTaskRunStateRequest,
    ) -> dict[str, Any]:
        """Give the run the proposal's cache key (and expiration) before deciding."""
        expiration = (
            convert.timestamp_to_us(req.cache_expiration_time)
            if req.HasField("cache_expiration_time")
            else None
        )
        conn.execute(
            self._raw_cache.set_key,
            {
                "b_id": current["id"],
                "b_cache_key": req.cache_key,
                "b_cache_expiration_time": expiration,
            },
        )
        return {**current, "cache_key": req.cache_key, "cache_expiration_time": expiration}

    def _cache_hit(
        self, conn: RawTransaction, current: Mapping[str, Any], now: int
    ) -> dict[str, Any] | None:
        """The newest valid cache entry for the task run's key (another COMPLETED run), if any."""
        return conn.first(
            self._raw_cache.lookup,
            {
                "cache_key": current["cache_key"],
                "completed": rules.COMPLETED,
                "id": current["id"],
                "now": now,
            },
        )

    def _decide_and_apply(
        self,
        conn: RawTransaction,
        kind: RunKind,
        current: Mapping[str, Any],
        state: states_pb2.State,
        proposal: rules.Proposal,
        now: int,
        refresh_cache: bool = False,
        deferred: list[dict[str, Any]] | None = None,
        collect: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> tuple[states_pb2.OrchestrationResult, Any, Mapping[str, Any]]:
        """Judge ``proposal`` against the locked run ``current`` and store what the rules say.

        Shared by proposals and by a task run's create-and-start. Returns the orchestration
        result, the run message as it now is, and the run's row values. With ``deferred``
        (a new run, not inserted yet) the new history row is appended to it instead of
        written, and the run's row is left for the caller to insert with the returned values.
        With ``collect`` the writes are appended to its lists instead (see `_apply`).
        """
        raw = self._raw[kind]
        hit = None
        limit_ids = None
        decision = None
        if kind is TASK_RUN:
            if current["state_type"] == rules.RUNNING:
                # A task's end: accepted by every rule when made without conditions, so the
                # snapshot, the cache and the limits are not looked at (see
                # `plain_completion`).
                decision = rules.plain_completion(current["state_name"], proposal)
            elif not current["cache_key"] and not is_limited(kind, current):
                # A task's start, with no cache entry or limit that could answer instead.
                decision = rules.plain_start(current["state_type"], current["state_name"], proposal)
        if decision is None:
            decision, hit, limit_ids, now = self._decide(
                conn, kind, current, proposal, now, refresh_cache
            )
        result = states_pb2.OrchestrationResult(reason=decision.reason)
        result.decision = decision.decision  # type: ignore[assignment]  # an int enum value
        if decision.wait_seconds:
            convert.set_duration_seconds(result.wait, decision.wait_seconds)
        if decision.store is not None:
            if decision.cached_from and hit is not None:
                payload_result, payload_failure = hit["result"], None
            elif decision.proposal_matched:
                payload_result, payload_failure = payloads(state)
            else:
                # AwaitingRetry keeps the failure that caused it, for the history.
                payload_result, payload_failure = None, payloads(state)[1]
            values: Mapping[str, Any] = self._apply(
                conn,
                kind,
                raw,
                current,
                decision.store,
                decision.increments_run_count,
                payload_result,
                payload_failure,
                proposal.force,
                now,
                deferred=deferred,
                collect=collect,
            )
            if limit_ids and decision.store.type == rules.RUNNING:
                self._take_slots(conn, current["id"], limit_ids, values["state_time"])
            run = kind.build(values, payload_result, payload_failure)
        else:
            values = current
            if deferred is not None:  # a new run: its only state is the one being created
                first = deferred[0]
                run = kind.build(current, first["result"], first["failure"])
            else:
                run = kind.build(current, *self._payload(conn, raw, current))
        result.state.CopyFrom(run.state)
        return result, run, values

    def _decide(
        self,
        conn: RawTransaction,
        kind: RunKind,
        current: Mapping[str, Any],
        proposal: rules.Proposal,
        now: int,
        refresh_cache: bool,
    ) -> tuple[rules.RuleDecision, dict[str, Any] | None, list[str] | None, int]:
        """Every rule's judgement of ``proposal``, with what the rules needed looked up.

        Returns the decision, the cache entry it reuses (if any), the ids of the concurrency
        limits the run takes a slot of when it enters RUNNING, and the state's time (taken
        again after the limits' locks).
        """
        hit = None
        if (
            kind is TASK_RUN
            and proposal.type == rules.RUNNING
            and current["cache_key"]
            and not refresh_cache
            and not proposal.force
        ):
            hit = self._cache_hit(conn, current, now)
        snapshot = rules.RunSnapshot(
            state_type=current["state_type"],
            state_name=current["state_name"],
            state_id=current["state_id"] or "",
            scheduled_time=convert.us_to_datetime(current["scheduled_time"]),
            run_count=current["run_count"],
            policy=convert.policy_from_row(current),
        )
        # Concurrency slots: looked up only for a run under a possible limit entering RUNNING
        # (a task run with tags, a flow run of a deployment), so other runs pay nothing.
        full_limit, limit_ids = None, None
        if (
            proposal.type == rules.RUNNING
            and current["state_type"] not in rules.SLOT_HOLDING_TYPES
            and is_limited(kind, current)
        ):
            full_limit, limit_ids = self._check_slots(conn, kind, current)
            # The state's time is taken after the limits' locks, so a run's RUNNING is stored
            # later than the state that freed the slot it took: histories read in time order
            # never show more runs RUNNING than the limit allows.
            now = convert.now_us()
        decision = rules.decide(
            snapshot,
            proposal,
            convert.us_to_datetime(now),
            kind.noun,
            cache_hit=rules.CacheHit(hit["id"]) if hit is not None else None,
            jitter=random.uniform(-1.0, 1.0) if snapshot.policy.retry_jitter_factor else 0.0,
            full_limit=full_limit,
        )
        return decision, hit, limit_ids, now

    @staticmethod
    def _payload(
        conn: RawTransaction, raw: RawStatements, current: Mapping[str, Any]
    ) -> tuple[bytes | None, bytes | None]:
        """Result and failure of the run's current state (kept states are answered whole)."""
        found = conn.first(raw.state_payload, {"id": current["state_id"]})
        if found is None:
            return None, None
        return found["result"], found["failure"]

    def _apply(
        self,
        conn: RawTransaction,
        kind: RunKind,
        raw: RawStatements,
        current: Mapping[str, Any],
        stored: rules.StoredState,
        increments_run_count: bool,
        result: bytes | None,
        failure: bytes | None,
        forced: bool,
        now: int | None = None,
        deferred: list[dict[str, Any]] | None = None,
        collect: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Write ``stored`` as the run's new state: history row + run row. Returns the new row.

        With ``deferred`` nothing is written: the history row is appended to it (see
        `_decide_and_apply`). With ``collect`` the history row and the run row's update are
        numbered as usual but appended to its two lists, for the caller to write many at
        once (see `TaskRunEndsMixin`).
        """
        now = convert.now_us() if now is None else now
        state_id = new_id()
        sequence = current["last_sequence"] + 1
        if stored.scheduled_time is not None:
            scheduled = convert.datetime_to_us(stored.scheduled_time)
        elif stored.type == states_pb2.STATE_TYPE_SCHEDULED:
            scheduled = now
        else:
            scheduled = None
        was_running = current["state_type"] == states_pb2.STATE_TYPE_RUNNING
        is_running = stored.type == states_pb2.STATE_TYPE_RUNNING
        running_since = current["running_since"]
        total = current["total_run_time_us"]
        start_time = current["start_time"]
        if is_running and not was_running:
            running_since = now
            if start_time is None:
                start_time = now
        elif was_running and not is_running:
            if running_since is not None:
                total += max(now - running_since, 0)
            running_since = None
        end_time = now if rules.is_terminal(stored.type) else None
        run_count = current["run_count"] + (1 if increments_run_count else 0)
        row: dict[str, Any] = {
            "id": state_id,
            kind.owner_column: current["id"],
            "sequence": sequence,
            "type": stored.type,
            "name": stored.name,
            "message": stored.message,
            "create_time": now,
            "scheduled_time": scheduled,
            "result": result,
            "failure": failure,
            "forced": forced,
        }
        if deferred is not None:
            deferred.append(row)
        else:
            if (
                current["state_type"] in rules.SLOT_HOLDING_TYPES
                and stored.type not in rules.SLOT_HOLDING_TYPES
                and is_limited(kind, current)
            ):
                self._free_slots(conn, kind, current)
            if kind is TASK_RUN:
                self._task_state_event(conn, current["flow_run_id"], row)
            update = {
                "b_id": current["id"],
                "b_state_id": state_id,
                "b_state_type": stored.type,
                "b_state_name": stored.name,
                "b_state_message": stored.message,
                "b_state_time": now,
                "b_scheduled_time": scheduled,
                "b_run_count": run_count,
                "b_start_time": start_time,
                "b_end_time": end_time,
                "b_total_run_time_us": total,
                "b_running_since": running_since,
                "b_last_sequence": sequence,
                "b_update_time": now,
            }
            if collect is not None:
                collect[0].append(row)
                collect[1].append(update)
            else:
                conn.execute(raw.insert_state, row)
                conn.execute(raw.update_run, update)
        values = dict(current)
        values.update(
            state_id=state_id,
            state_type=stored.type,
            state_name=stored.name,
            state_message=stored.message,
            state_time=now,
            scheduled_time=scheduled,
            run_count=run_count,
            start_time=start_time,
            end_time=end_time,
            total_run_time_us=total,
            running_since=running_since,
            last_sequence=sequence,
            update_time=now,
        )
        return values

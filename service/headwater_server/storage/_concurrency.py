"""Concurrency limits as leases: tag limits for task runs, deployment limits for flow runs.

A slot is a ``concurrency_slots`` row. The proposal that moves a run into RUNNING takes one slot
of each of its limits (or is answered WAIT, see :func:`rules.decide`), and the write that moves
it out of RUNNING (or CANCELLING) deletes its slots, both inside the proposal's transaction; a
deleted run's slots go with it. So a slot exists exactly while its run runs, whoever ends the
run: its engine, the service's crash detection, a cancel, or a delete.

Takers serialise on the limit (``SELECT ... FOR UPDATE`` of the concurrency_limits row, or an
advisory lock named after the deployment, on PostgreSQL; SQLite's one writer does it there) and
count the slots after taking the lock, so two runs never take the last slot together. Limits
are locked in tag order, after the run's own row, so two takers never wait on each other in a
cycle.

Runs without tags and flow runs without a deployment never reach this module: the check is one
comparison on the run row the proposal already read.

Freed slots are announced after the commit through the repository's ``announce`` (as flow run
events are), as entries ``(SLOTS_FREED + key, 0)``; the server's hub wakes the proposals that
wait for them (:mod:`headwater_server.application.slots`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from headwater.v1 import concurrency_limits_pb2, deployments_pb2
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from headwater_server import errors
from headwater_server.orchestration import rules
from headwater_server.storage import convert, pagination
from headwater_server.storage._base import M, RepositoryBase
from headwater_server.storage.fastpath import RawTransaction
from headwater_server.storage.schema import concurrency_limits, concurrency_slots
from headwater_server.storage.statements import FLOW_RUN, RunKind, keyset_after
from headwater_server.storage.values import new_id

__all__ = [
    "ANY_KEY",
    "SLOTS_FREED",
    "ConcurrencyLimitsMixin",
    "deployment_key",
    "free_slots_of_deleted",
    "slot_keys",
    "tag_key",
]

#: Prefix of the announced entries that name a freed slot's wait key.
SLOTS_FREED = "slots-freed:"

_NO_TAGS = "[]"
_CANCEL_NEW = deployments_pb2.COLLISION_STRATEGY_CANCEL_NEW


#: The wait key announced when slots of unknown keys were freed (runs deleted): wakes everyone.
ANY_KEY = "*"


def free_slots_of_deleted(conn: Connection, runs: Any) -> bool:
    """Delete the slots of runs about to be deleted (``runs``: a SELECT of their ids).

    Returns whether any was deleted; the caller then announces ``SLOTS_FREED + ANY_KEY``
    after its commit, so that the runs waiting for them try again.
    """
    return bool(
        conn.execute(delete(concurrency_slots).where(concurrency_slots.c.run_id.in_(runs))).rowcount
    )


def tag_key(tag: str) -> str:
    """The wait key of a tag's limit: task runs with the tag wait on it."""
    return f"tag:{tag}"


def deployment_key(deployment_id: str) -> str:
    """The wait key of a deployment's limit: its flow runs wait on it."""
    return f"deployment:{deployment_id}"


def is_limited(kind: RunKind, run: Mapping[str, Any]) -> bool:
    """Whether a run may be under a limit: a task run with tags, a flow run of a deployment."""
    if kind is FLOW_RUN:
        return run["deployment_id"] is not None
    return bool(run["tags"] != _NO_TAGS)


def slot_keys(kind: RunKind, run: Mapping[str, Any]) -> list[str]:
    """The wait keys a limited run's slots belong to (announced when it frees them)."""
    if kind is FLOW_RUN:
        return [deployment_key(run["deployment_id"])]
    return [tag_key(tag) for tag in json.loads(run["tags"])]


class ConcurrencyLimitsMixin(RepositoryBase):
    """Tag limits (create, read, list, delete, reset) and the slots proposals take and free."""

    # ------------------------------------------------------------------ slots (hot path)

    def _check_slots(
        self, conn: RawTransaction, kind: RunKind, run: Mapping[str, Any]
    ) -> tuple[rules.FullLimit | None, list[str]]:
        """Lock the run's limits; return the first full one and the ids of all of them.

        Called only for a limited run entering RUNNING; the caller takes slots of the returned
        ids if the run does enter RUNNING.
        """
        raw = self._raw_slots
        found: list[tuple[str, str, int, bool]] = []  # (limit id, what, limit, cancel_new)
        if kind is FLOW_RUN:
            if raw.lock_deployment_slots is not None:
                conn.first(raw.lock_deployment_slots, {"id": run["deployment_id"]})
            row = conn.first(raw.read_deployment, {"id": run["deployment_id"]})
            if row is not None and row["concurrency_limit"] > 0:
                found.append(
                    (
                        row["id"],
                        f"deployment '{row['flow_name']}/{row['name']}'",
                        row["concurrency_limit"],
                        row["collision_strategy"] == _CANCEL_NEW,
                    )
                )
        else:
            for tag in sorted(set(json.loads(run["tags"]))):
                row = conn.first(raw.lock_tag, {"tag": tag})
                if row is not None:
                    found.append((row["id"], f"tag '{tag}'", row["concurrency_limit"], False))
        full = None
        count = raw.count_flow_slots if kind is FLOW_RUN else raw.count_task_slots
        for limit_id, what, limit, cancel_new in found:
            counted = conn.first(count, {"limit_id": limit_id})
            taken = counted["taken"] if counted is not None else 0
            if taken >= limit:
                full = rules.FullLimit(what=what, limit=limit, active=taken, cancel_new=cancel_new)
                break
        return full, [limit_id for limit_id, *_ in found]

    def _take_slots(
        self, conn: RawTransaction, run_id: str, limit_ids: list[str], now: int
    ) -> None:
        """Record that ``run_id`` holds one slot of each limit (it just entered RUNNING)."""
        conn.execute_many(
            self._raw_slots.insert_slot,
            [{"limit_id": i, "run_id": run_id, "create_time": now} for i in limit_ids],
        )

    def _free_slots(self, conn: RawTransaction, kind: RunKind, run: Mapping[str, Any]) -> None:
        """Give back every slot ``run`` holds (it is leaving RUNNING); announced on commit."""
        if conn.execute(self._raw_slots.delete_slots, {"run_id": run["id"]}):
            conn.events.extend((SLOTS_FREED + key, 0) for key in slot_keys(kind, run))

    # ------------------------------------------------------------------ the limits

    def create_concurrency_limit(
        self, req: concurrency_limits_pb2.CreateConcurrencyLimitRequest
    ) -> concurrency_limits_pb2.CreateConcurrencyLimitResponse:
        """Create a tag's limit, or change the number of the existing one."""
        key = self._request_key(req.request_id)
        method = "CreateConcurrencyLimit"
        response_type = concurrency_limits_pb2.CreateConcurrencyLimitResponse
        try:
            with self._write() as conn:
                if key and (replay := self._replay(conn, key, method, "", response_type)):
                    return replay
                now = convert.now_us()
                existing = self._limit_row(conn, req.tag, missing_ok=True)
                if existing is None:
                    limit_id = new_id()
                    conn.execute(
                        insert(concurrency_limits).values(
                            id=limit_id,
                            tag=req.tag,
                            concurrency_limit=req.concurrency_limit,
                            create_time=now,
                            update_time=now,
                        )
                    )
                else:
                    limit_id = existing["id"]
                    conn.execute(
                        update(concurrency_limits)
                        .where(concurrency_limits.c.id == limit_id)
                        .values(concurrency_limit=req.concurrency_limit, update_time=now)
                    )
                response = response_type(
                    concurrency_limit=self._limit_message(conn, self._limit_row(conn, req.tag)),
                    created=existing is None,
                )
                if key:
                    self._remember(conn, key, method, limit_id, response)
        except IntegrityError:
            # A concurrent create of the same tag (or request) committed first: ask again.
            replay = self._replay_after_conflict(key, method, response_type)
            if replay is not None:
                return replay
            return self.create_concurrency_limit(req)
        # A higher limit may have room for runs waiting on it.
        self.announce([(SLOTS_FREED + tag_key(req.tag), 0)])
        return response

    def get_concurrency_limit(
        self, req: concurrency_limits_pb2.GetConcurrencyLimitRequest
    ) -> concurrency_limits_pb2.GetConcurrencyLimitResponse:
        """One tag's limit with the runs holding its slots."""
        with self._read() as conn:
            message = self._limit_message(conn, self._limit_row(conn, req.tag))
        return concurrency_limits_pb2.GetConcurrencyLimitResponse(concurrency_limit=message)

    def list_concurrency_limits(
        self, req: concurrency_limits_pb2.ListConcurrencyLimitsRequest
    ) -> concurrency_limits_pb2.ListConcurrencyLimitsResponse:
        """Limits, oldest first, each with the runs holding its slots."""
        size = pagination.page_size(req.page_size)
        after = pagination.decode_token("concurrency_limits", req.page_token)
        table = concurrency_limits
        stmt = select(table)
        if after is not None:
            stmt = stmt.where(keyset_after(table.c.create_time, table.c.id, after))
        stmt = stmt.order_by(table.c.create_time, table.c.id).limit(size + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            page: list[Mapping[Any, Any]] = [r._mapping for r in rows[:size]]
            holders = self._holders(conn, [row["id"] for row in page])
        return concurrency_limits_pb2.ListConcurrencyLimitsResponse(
            concurrency_limits=[_message(row, holders.get(row["id"], [])) for row in page],
            next_page_token=pagination.next_page_token("concurrency_limits", rows, size),
        )

    def delete_concurrency_limit(
        self, req: concurrency_limits_pb2.DeleteConcurrencyLimitRequest
    ) -> concurrency_limits_pb2.DeleteConcurrencyLimitResponse:
        """Delete a tag's limit and its slots; the runs waiting on it are woken."""
        return self._remove_slots(
            req, "DeleteConcurrencyLimit", concurrency_limits_pb2.DeleteConcurrencyLimitResponse
        )

    def reset_concurrency_limit(
        self, req: concurrency_limits_pb2.ResetConcurrencyLimitRequest
    ) -> concurrency_limits_pb2.ResetConcurrencyLimitResponse:
        """Free every slot of a tag's limit; the runs waiting on it are woken."""
        return self._remove_slots(
            req, "ResetConcurrencyLimit", concurrency_limits_pb2.ResetConcurrencyLimitResponse
        )

    def _remove_slots(
        self,
        req: concurrency_limits_pb2.DeleteConcurrencyLimitRequest
        | concurrency_limits_pb2.ResetConcurrencyLimitRequest,
        method: str,
        response_type: type[M],
    ) -> M:
        """Delete a limit's slots, and the limit itself for a delete; one transaction."""
        key = self._request_key(req.request_id)
        with self._write() as conn:
            if key and (replay := self._replay(conn, key, method, "", response_type)):
                return replay
            row = self._limit_row(conn, req.tag, lock=True)
            conn.execute(delete(concurrency_slots).where(concurrency_slots.c.limit_id == row["id"]))
            response: M = response_type()
            if isinstance(response, concurrency_limits_pb2.ResetConcurrencyLimitResponse):
                response.concurrency_limit.CopyFrom(_message(row, []))
            else:
                conn.execute(delete(concurrency_limits).where(concurrency_limits.c.id == row["id"]))
            if key:
                self._remember(conn, key, method, row["id"], response)
        self.announce([(SLOTS_FREED + tag_key(req.tag), 0)])
        return response

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _limit_row(
        conn: Connection, tag: str, *, missing_ok: bool = False, lock: bool = False
    ) -> Any:
        """The limit of ``tag`` as a row mapping (NOT_FOUND, or None with ``missing_ok``)."""
        stmt = select(concurrency_limits).where(concurrency_limits.c.tag == tag)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            if missing_ok:
                return None
            raise errors.ServiceError(
                code=errors.not_found_by_name("concurrency_limit", tag).code,
                reason="CONCURRENCY_LIMIT_NOT_FOUND",
                message=(
                    f"No concurrency limit for the tag {errors.shown(tag)} exists. "
                    "ListConcurrencyLimits (`headwater concurrency-limit ls`) lists them; "
                    "CreateConcurrencyLimit sets one."
                ),
                resource_type="concurrency_limit",
                resource_name=tag,
            )
        return row._mapping

    def _limit_message(
        self, conn: Connection, row: Mapping[Any, Any]
    ) -> concurrency_limits_pb2.ConcurrencyLimit:
        return _message(row, self._holders(conn, [row["id"]]).get(row["id"], []))

    @staticmethod
    def _holders(conn: Connection, limit_ids: list[str]) -> dict[str, list[str]]:
        """The runs holding slots of each limit, oldest first."""
        if not limit_ids:
            return {}
        held: dict[str, list[str]] = {}
        for limit_id, run_id in conn.execute(
            select(concurrency_slots.c.limit_id, concurrency_slots.c.run_id)
            .where(concurrency_slots.c.limit_id.in_(limit_ids))
            .order_by(concurrency_slots.c.create_time, concurrency_slots.c.run_id)
        ):
            held.setdefault(limit_id, []).append(run_id)
        return held


def _message(row: Mapping[str, Any], holders: list[str]) -> concurrency_limits_pb2.ConcurrencyLimit:
    limit = concurrency_limits_pb2.ConcurrencyLimit(
        id=row["id"],
        tag=row["tag"],
        concurrency_limit=row["concurrency_limit"],
        active_slots=holders,
    )
    convert.set_timestamp(limit.create_time, row["create_time"])
    convert.set_timestamp(limit.update_time, row["update_time"])
    return limit

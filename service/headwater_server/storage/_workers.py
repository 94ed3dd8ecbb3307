"""Claiming due runs for workers and serving processes, and telling them which runs to stop.

A claim picks due runs (SCHEDULED, scheduled time come, owned by no engine: a run awaiting a
retry belongs to the engine that retries it) of the poller's deployments or work pool, and moves
each to PENDING through the ordinary proposal (:meth:`_decide_and_apply`), all in one write
transaction. SQLite has one writer at a time (``BEGIN IMMEDIATE`` comes before the choice), and
on PostgreSQL the chosen rows are taken ``FOR UPDATE SKIP LOCKED``: a concurrent poller skips
them and takes others, so no run is ever claimed twice.

The order is fixed: a pool's queues by priority, the highest (lowest number) first; queues of
equal priority as one queue, so their runs are taken together by scheduled time (earliest
first), and runs due at the same moment by id (the lower first). A served deployment's runs
(no queues) likewise by scheduled time, then id.

A pool's ``concurrency_limit`` and its queues' limits count the runs claimed and not finished
(PENDING, RUNNING, CANCELLING). A claim against any limit first locks the pool's row on
PostgreSQL, so two pollers of one pool cannot both fill its (or a queue's) last slot.

A poller that names itself (``worker_id``) holds what it claims as a lease (see ``_leases``):
the runs carry its id until their engine starts them, and go back to SCHEDULED if it dies.

One transaction does it all, in few statements (each a round trip to PostgreSQL): the pool and
its queues in one read, the due runs read whole and locked in one (no second read per run), two
writes per claimed run (its history row and its row), the lease, and the claimed runs'
deployments with their schedules in one read; a claim that finds nothing due reads when the
next run is (`_next_due`) instead.

When the next run is due is read from the due-runs index alone, in time order, a bounded window
of it (`NEXT_DUE_WINDOW` runs of any scope), and only then matched with the scope's queues or
deployments. Joining first and sorting the result is what PostgreSQL chose for the plain
``ORDER BY ... LIMIT 1`` join with some statistics (taken while the scheduler's first fill was
under way), and with an hour of runs ahead that read every future run on every empty poll
(100 ms to seconds each): the long poll then answered in batches, seconds late. A window
without a run of the scope still bounds the wait: none of the scope's runs is due before the
window's last one, so the poll looks again then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from headwater.v1 import deployments_pb2, flow_runs_pb2, schedules_pb2, states_pb2
from sqlalchemy import bindparam, case, func, literal_column, select

from headwater_server import errors
from headwater_server.orchestration import rules
from headwater_server.storage import convert
from headwater_server.storage._deployments import DeploymentsMixin
from headwater_server.storage._leases import LeasesMixin
from headwater_server.storage.fastpath import Prepared, RawTransaction
from headwater_server.storage.schema import (
    deployment_schedules,
    deployments,
    flow_runs,
    work_pools,
    work_queues,
)
from headwater_server.storage.statements import FLOW_RUN
from headwater_server.storage.values import canonical_id

# A claimed run counts against its pool's limit until it ends.
_ACTIVE = (rules.PENDING, rules.RUNNING, rules.CANCELLING)
#: How many of the next runs due (of any scope) one empty claim reads to find its scope's next.
NEXT_DUE_WINDOW = 64
# The statements compiled for the scopes seen (their texts depend on how many ids they bind).
_STATEMENTS_KEPT = 256
# The schedule columns of the claimed deployments' read, prefixed apart from the deployment's.
_SCHEDULE_PREFIX = "s_"


@dataclass(frozen=True, slots=True)
class ClaimTarget:
    """Where a poller takes runs from: a work pool (some or all of its queues) or deployments.

    Attributes:
        work_pool_name: The pool ("" when polling deployments).
        work_queue_names: Queues of the pool; empty means all of them.
        deployment_ids: Canonical deployment ids (empty when polling a pool).
    """

    work_pool_name: str = ""
    work_queue_names: tuple[str, ...] = ()
    deployment_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim pass found.

    Attributes:
        runs: The runs claimed (now PENDING), each with its deployment.
        next_due_us: When the poller should look again for runs not yet due (microseconds
            since the epoch): the earliest matching run's scheduled time, or a time no
            matching run is due before; None when no matching run is scheduled ahead.
        claims: With a worker id and runs claimed: the worker's count of claims, this one
            included (see `LeasesMixin.worker_seen`); 0 otherwise.
    """

    runs: tuple[tuple[flow_runs_pb2.FlowRun, deployments_pb2.Deployment], ...]
    next_due_us: int | None
    claims: int = 0


@dataclass(frozen=True, slots=True)
class _Scope:
    """A resolved target: its bind values (queue or deployment ids) and the pool's limits."""

    values: dict[str, Any]
    pool_id: str | None
    limit: int
    paused: bool
    queue_limits: dict[str, int] = field(default_factory=dict)
    queue_priorities: dict[str, int] = field(default_factory=dict)

    @property
    def column(self) -> Any:
        """The column the scope's values match: the run's queue (a pool) or deployment."""
        return deployments.c.work_queue_id if self.pool_id else flow_runs.c.deployment_id

    @property
    def where(self) -> Any:
        """The condition on runs (joined with their deployments) of this scope."""
        return self.column.in_([bindparam(name) for name in self.values])


class WorkersMixin(LeasesMixin, DeploymentsMixin):
    """Claims of due runs (``PollRuns``) and the runs a worker must stop (``Heartbeat``)."""

    def claim_due_runs(
        self, target: ClaimTarget, max_runs: int, worker_name: str, worker_id: str = ""
    ) -> Claim:
        """Claim up to ``max_runs`` due runs of ``target`` for ``worker_name``, atomically.

        With a ``worker_id`` the runs are leased to that worker, in the same transaction.

        Raises:
            ServiceError: NOT_FOUND for an unknown pool, queue or deployment.
        """
        now = convert.now_us()
        message = f"Claimed by {worker_name}."[:4096]
        claimed: list[flow_runs_pb2.FlowRun] = []
        with self._write_raw() as conn:
            scope = self._scope(conn, target)
            if scope.paused:
                return Claim((), None)
            room = max_runs
            if scope.limit or scope.queue_limits:
                count = conn.first(self._pool_load(), {"pool_id": scope.pool_id})
                if scope.limit:
                    room = min(room, scope.limit - int(count["active"] if count else 0))
            queue_room = self._queue_room(conn, scope)
            due = _open_queues(scope, queue_room)
            proposal = rules.Proposal(type=rules.PENDING, message=message)
            state = states_pb2.State(type=states_pb2.STATE_TYPE_PENDING, message=message)
            for tier in _by_priority(due) if due is not None else ():
                left = room - len(claimed)
                if left <= 0:
                    break
                values = {**tier.values, "now": now, "room": left}
                # The rows come whole and locked (PostgreSQL; SQLite's writer is alone): each
                # is the run as it is now, ready for the proposal.
                for current in conn.all(self._due(tier), values):
                    queue_id = current.pop("claim_queue_id")
                    if queue_room.get(queue_id, 1) <= 0:
                        continue  # its queue filled up with runs claimed just before
                    result, run, _ = self._decide_and_apply(
                        conn, FLOW_RUN, current, state, proposal, now
                    )
                    if result.decision == states_pb2.DECISION_ACCEPT:
                        claimed.append(run)
                        if queue_id in queue_room:
                            queue_room[queue_id] -= 1
            if not claimed:
                return Claim((), self._next_due(conn, scope, now))
            claims = 0
            if worker_id:
                claims = self._lease(conn, worker_id, worker_name, [run.id for run in claimed])
            found = self._claimed_deployments(conn, {run.deployment_id for run in claimed})
        return Claim(tuple((run, found[run.deployment_id]) for run in claimed), None, claims)

    def runs_to_stop(self, flow_run_ids: Sequence[str]) -> list[str]:
        """Those of ``flow_run_ids`` being cancelled, cancelled, or gone (a worker stops them)."""
        ids = [canonical_id(run_id) for run_id in flow_run_ids]
        if not ids:
            return []
        with self._read() as conn:
            states = dict(
                conn.execute(
                    select(flow_runs.c.id, flow_runs.c.state_type).where(flow_runs.c.id.in_(ids))
                ).all()
            )
        stop = (rules.CANCELLING, states_pb2.STATE_TYPE_CANCELLED)
        return [run_id for run_id in ids if states.get(run_id, rules.CANCELLING) in stop]

    # ------------------------------------------------------------------ the scope

    def _scope(self, conn: RawTransaction, target: ClaimTarget) -> _Scope:
        """Resolve ``target`` (one read): the ids its runs are matched by, and its limits."""
        if target.deployment_ids:
            names = _names("d", len(target.deployment_ids))
            values = dict(zip(names, target.deployment_ids, strict=True))
            found = {row["id"] for row in conn.all(self._known_deployments(names), values)}
            for deployment_id in target.deployment_ids:
                if deployment_id not in found:
                    raise errors.not_found("deployment", deployment_id)
            return _Scope(values=values, pool_id=None, limit=0, paused=False)
        rows = conn.all(self._pool_and_queues(), {"name": target.work_pool_name})
        if not rows:
            raise errors.not_found_by_name("work_pool", target.work_pool_name)
        queues = {row["name"]: row for row in rows if row["id"] is not None}
        for name in target.work_queue_names:
            if name not in queues:
                raise errors.not_found_by_name("work_queue", f"{target.work_pool_name}/{name}")
        chosen = [
            row
            for name, row in queues.items()
            if (name in target.work_queue_names or not target.work_queue_names)
            and not row["paused"]
        ]
        pool = rows[0]
        return _Scope(
            values={f"q{index}": row["id"] for index, row in enumerate(chosen)},
            pool_id=pool["pool_id"],
            limit=pool["pool_limit"],
            paused=bool(pool["pool_paused"]) or not chosen,
            queue_limits={
                row["id"]: row["concurrency_limit"] for row in chosen if row["concurrency_limit"]
            },
            queue_priorities={row["id"]: row["priority"] for row in chosen},
        )

    def _queue_room(self, conn: RawTransaction, scope: _Scope) -> dict[str, int]:
        """How many more runs each of the scope's limited queues may have claimed."""
        if not scope.queue_limits:
            return {}
        names = _names("lq", len(scope.queue_limits))
        rows = conn.all(self._queue_load(names), dict(zip(names, scope.queue_limits, strict=True)))
        counts = {row["work_queue_id"]: int(row["active"]) for row in rows}
        return {queue: limit - counts.get(queue, 0) for queue, limit in scope.queue_limits.items()}

    # ------------------------------------------------------------------ after the claim

    def _claimed_deployments(
        self, conn: RawTransaction, ids: Iterable[str]
    ) -> dict[str, deployments_pb2.Deployment]:
        """The claimed runs' deployments, with their schedules (one read)."""
        ordered = sorted(ids)
        names = _names("c", len(ordered))
        rows = conn.all(self._deployments_read(names), dict(zip(names, ordered, strict=True)))
        columns = [column.key for column in deployments.c]
        found: dict[str, tuple[dict[str, Any], list[schedules_pb2.DeploymentSchedule]]] = {}
        for row in rows:
            _, schedules = found.setdefault(row["id"], ({key: row[key] for key in columns}, []))
            if row[f"{_SCHEDULE_PREFIX}id"] is not None:
                schedules.append(
                    convert.deployment_schedule_message(
                        {
                            column.key: row[_SCHEDULE_PREFIX + column.key]
                            for column in deployment_schedules.c
                        }
                    )
                )
        return {
            deployment_id: convert.deployment_message(deployment, schedules)
            for deployment_id, (deployment, schedules) in found.items()
        }

    def _next_due(self, conn: RawTransaction, scope: _Scope, now: int) -> int | None:
        """When the poller should look again (see `Claim.next_due_us` and the module doc)."""
        row = conn.first(self._next_due_read(scope), {**scope.values, "now": now})
        if row is None or not row["seen"]:
            return None
        if row["first"] is not None:
            return int(row["first"])
        if row["seen"] < NEXT_DUE_WINDOW:
            return None  # the window holds every run scheduled ahead: none of the scope's
        return int(row["last"])

    # ------------------------------------------------------------------ statements

    def _statement(self, key: tuple[Any, ...], build: Any) -> Prepared:
        """The statement ``key`` names, compiled once (``build()`` makes it)."""
        cache: dict[tuple[Any, ...], Prepared] = self.__dict__.setdefault("_claim_sql", {})
        prepared = cache.get(key)
        if prepared is None:
            if len(cache) >= _STATEMENTS_KEPT:
                cache.clear()  # many scopes of many sizes: start again rather than grow
            prepared = cache[key] = Prepared(build(), self._engine)
        return prepared

    def _pool_and_queues(self) -> Prepared:
        """A pool (by ``name``) and each of its queues, one row per queue."""

        def build() -> Any:
            return (
                select(
                    work_pools.c.id.label("pool_id"),
                    work_pools.c.paused.label("pool_paused"),
                    work_pools.c.concurrency_limit.label("pool_limit"),
                    work_queues.c.id,
                    work_queues.c.name,
                    work_queues.c.paused,
                    work_queues.c.concurrency_limit,
                    work_queues.c.priority,
                )
                .select_from(
                    work_pools.outerjoin(work_queues, work_queues.c.work_pool_id == work_pools.c.id)
                )
                .where(work_pools.c.name == bindparam("name"))
            )

        return self._statement(("pool",), build)

    def _known_deployments(self, names: Sequence[str]) -> Prepared:
        """Which of the deployments bound to ``names`` exist."""

        def build() -> Any:
            return select(deployments.c.id).where(
                deployments.c.id.in_([bindparam(name) for name in names])
            )

        return self._statement(("known", *names), build)

    def _pool_load(self) -> Prepared:
        """How many runs of a pool are claimed and not finished (locking the pool's row)."""

        def build() -> Any:
            active = (
                select(func.count())
                .select_from(
                    flow_runs.join(deployments, deployments.c.id == flow_runs.c.deployment_id)
                )
                .join(work_queues, work_queues.c.id == deployments.c.work_queue_id)
                .where(
                    work_queues.c.work_pool_id == bindparam("pool_id"),
                    flow_runs.c.state_type.in_([_constant(value) for value in _ACTIVE]),
                )
                .scalar_subquery()
            )
            if self._dialect == "sqlite":
                return select(active.label("active"))
            # Serialise claims of one pool so two pollers cannot both fill its last slot.
            return (
                select(work_pools.c.id, active.label("active"))
                .where(work_pools.c.id == bindparam("pool_id"))
                .with_for_update(of=work_pools)
            )

        return self._statement(("pool_load",), build)

    def _queue_load(self, names: Sequence[str]) -> Prepared:
        """Runs claimed and not finished per queue, of the queues bound to ``names``."""

        def build() -> Any:
            return (
                select(deployments.c.work_queue_id, func.count().label("active"))
                .select_from(
                    flow_runs.join(deployments, deployments.c.id == flow_runs.c.deployment_id)
                )
                .where(
                    deployments.c.work_queue_id.in_([bindparam(name) for name in names]),
                    flow_runs.c.state_type.in_([_constant(value) for value in _ACTIVE]),
                )
                .group_by(deployments.c.work_queue_id)
            )

        return self._statement(("queue_load", *names), build)

    def _due(self, scope: _Scope) -> Prepared:
        """Up to ``room`` due runs of ``scope``, whole, earliest first (locked on PostgreSQL),
        each with its queue as ``claim_queue_id``."""

        def build() -> Any:
            statement = (
                select(flow_runs, deployments.c.work_queue_id.label("claim_queue_id"))
                .select_from(
                    flow_runs.join(deployments, deployments.c.id == flow_runs.c.deployment_id)
                )
                .where(
                    scope.where,
                    flow_runs.c.state_type == _constant(rules.SCHEDULED),
                    flow_runs.c.scheduled_time <= bindparam("now"),
                    # A run an engine owns (AwaitingRetry) is that engine's to run again.
                    flow_runs.c.engine_id.is_(None),
                    # A run waiting for a concurrency slot is its engine's, which proposes it
                    # again.
                    flow_runs.c.state_name
                    != literal_column(f"'{rules.AWAITING_CONCURRENCY_SLOT}'"),
                )
                .order_by(flow_runs.c.scheduled_time, flow_runs.c.id)
                .limit(bindparam("room"))
                .offset(_constant(0))
            )
            if self._dialect != "sqlite":
                statement = statement.with_for_update(of=flow_runs, skip_locked=True)
            return statement

        return self._statement(("due", scope.pool_id is None, *scope.values), build)

    def _next_due_read(self, scope: _Scope) -> Prepared:
        """Of the next `NEXT_DUE_WINDOW` runs scheduled after ``now`` (any scope, read from the
        due-runs index in time order): the first of ``scope``'s, the last, and how many."""

        def build() -> Any:
            window = (
                select(flow_runs.c.scheduled_time, flow_runs.c.deployment_id)
                .where(
                    flow_runs.c.state_type == _constant(rules.SCHEDULED),
                    flow_runs.c.scheduled_time > bindparam("now"),
                    flow_runs.c.engine_id.is_(None),
                )
                .order_by(flow_runs.c.scheduled_time)
                .limit(_constant(NEXT_DUE_WINDOW))
                .offset(_constant(0))
                .subquery("ahead")
            )
            if scope.pool_id is None:
                source: Any = window
                matches = window.c.deployment_id.in_([bindparam(name) for name in scope.values])
            else:
                source = window.outerjoin(deployments, deployments.c.id == window.c.deployment_id)
                matches = scope.where
            return select(
                func.min(case((matches, window.c.scheduled_time))).label("first"),
                func.max(window.c.scheduled_time).label("last"),
                func.count().label("seen"),
            ).select_from(source)

        return self._statement(("next", scope.pool_id is None, *scope.values), build)

    def _deployments_read(self, names: Sequence[str]) -> Prepared:
        """The deployments bound to ``names``, one row per schedule (or one without)."""

        def build() -> Any:
            return (
                select(
                    deployments,
                    *[
                        column.label(_SCHEDULE_PREFIX + column.key)
                        for column in deployment_schedules.c
                    ],
                )
                .select_from(
                    deployments.outerjoin(
                        deployment_schedules,
                        deployment_schedules.c.deployment_id == deployments.c.id,
                    )
                )
                .where(deployments.c.id.in_([bindparam(name) for name in names]))
                .order_by(deployments.c.id, deployment_schedules.c.position)
            )

        return self._statement(("deployments", *names), build)


def _names(prefix: str, count: int) -> list[str]:
    """Bind names ``prefix0`` ... for ``count`` values."""
    return [f"{prefix}{index}" for index in range(count)]


def _open_queues(scope: _Scope, queue_room: dict[str, int]) -> _Scope | None:
    """``scope`` without the queues that are at their limit; None when no queue is left."""
    full = {queue for queue, room in queue_room.items() if room <= 0}
    if not full:
        return scope
    values = {name: queue for name, queue in scope.values.items() if queue not in full}
    if not values:
        return None
    return replace(scope, values=values)


def _by_priority(scope: _Scope) -> list[_Scope]:
    """A pool's ``scope`` split by queue priority, the highest (lowest number) first; queues
    of one priority together. Each part is claimed from in its own read, which the due-runs
    index serves in time order, rather than sorting every due run of the pool by priority."""
    if scope.pool_id is None:
        return [scope]
    tiers: dict[int, dict[str, Any]] = {}
    for name, queue in scope.values.items():
        tiers.setdefault(scope.queue_priorities.get(queue, 0), {})[name] = queue
    return [replace(scope, values=tiers[priority]) for priority in sorted(tiers)]


def _constant(value: int) -> Any:
    """An integer written into the SQL: prepared statements bind only the values they are given."""
    return literal_column(str(int(value)))

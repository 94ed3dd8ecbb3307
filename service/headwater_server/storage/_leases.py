"""Worker leases: the runs a worker claimed are its while it sends heartbeats.

A worker (a serving process or ``headwater worker start``) that names itself with a
``worker_id`` has a ``workers`` row, refreshed by its claims and heartbeats. Each run it claims
carries its id in ``flow_runs.engine_id`` (the column that names who is responsible for moving
a run on) until the run's own engine starts it and takes that over (see
``servicers.engine``). When a worker is unheard of for longer than the lease period, it is
gone: its runs still PENDING (claimed, never started) go back to SCHEDULED, owned by nobody,
so another worker claims them; its row is deleted. Runs its subprocesses started belong to
their engines, whose death the engine liveness handles (``headwater_server.liveness``).

A heartbeat counts from when the server heard it, not from when its write ran: on a busy
server (a worker starting a hundred run processes on two cores) the write can wait seconds
behind other database calls, and a lease measured from the write expired for a worker that
kept calling, whose runs, already handed to live processes, another worker then claimed and
started processes for again, doubling the load that made the server slow. Likewise a release
sweep judges against when it was decided, before it queued behind the writes of heartbeats
heard earlier. A row keeps the latest time it was given, whatever order the writes ran in.

These are not hot-path statements: a row write per claim and per heartbeat (once a second per
worker), and a release only for dead workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from headwater.v1 import flow_runs_pb2, states_pb2
from sqlalchemy import Engine, bindparam, case, delete, literal_column, select, update

from headwater_server.orchestration import rules
from headwater_server.storage import convert
from headwater_server.storage._proposals import ProposalsMixin
from headwater_server.storage.fastpath import Prepared, RawTransaction
from headwater_server.storage.schema import flow_runs, workers
from headwater_server.storage.statements import FLOW_RUN

__all__ = ["DeadWorker", "LeasesMixin"]

_NAME_LENGTH = 255


@dataclass(frozen=True)
class DeadWorker:
    """A worker whose lease ran out, and the runs it claimed that went back to SCHEDULED."""

    id: str
    name: str
    last_heartbeat_time: int
    released: list[flow_runs_pb2.FlowRun] = field(default_factory=list)


class _LeaseStatements:
    """The lease statements, compiled once per repository for its dialect."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]

        def upsert(counting: bool) -> Any:
            """Insert the worker's row, or refresh it, keeping the later heartbeat time (one
            heard earlier may be written after a claim); ``counting`` counts one more claim.
            Returns the worker's count of claims."""
            row = insert(workers).values(
                id=bindparam("b_id"),
                name=bindparam("b_name"),
                last_heartbeat_time=bindparam("b_now"),
                claims=literal_column("1" if counting else "0"),
            )
            later = case(
                (
                    row.excluded.last_heartbeat_time > workers.c.last_heartbeat_time,
                    row.excluded.last_heartbeat_time,
                ),
                else_=workers.c.last_heartbeat_time,
            )
            changes = {"name": row.excluded.name, "last_heartbeat_time": later}
            if counting:
                changes["claims"] = workers.c.claims + literal_column("1")
            return row.on_conflict_do_update(index_elements=[workers.c.id], set_=changes).returning(
                workers.c.claims
            )

        #: A heartbeat: the worker seen.
        self.seen = Prepared(upsert(counting=False), engine)
        #: A claim: the worker seen, and one more claim counted.
        self.count_claim = Prepared(upsert(counting=True), engine)
        self.own = Prepared(
            update(flow_runs)
            .where(flow_runs.c.id == bindparam("b_id"))
            .values(engine_id=bindparam("b_owner")),
            engine,
        )
        self.claimed = Prepared(
            select(flow_runs.c.id)
            .where(
                flow_runs.c.engine_id == bindparam("b_worker"),
                flow_runs.c.state_type == literal_column(str(int(rules.PENDING))),
            )
            .order_by(flow_runs.c.scheduled_time),
            engine,
        )
        self.forget = Prepared(
            delete(workers).where(
                workers.c.id == bindparam("b_id"),
                workers.c.last_heartbeat_time == bindparam("b_seen"),
            ),
            engine,
        )


class LeasesMixin(ProposalsMixin):
    """Worker rows, the lease on the runs a worker claims, and releasing dead workers' runs."""

    @cached_property
    def _lease_statements(self) -> _LeaseStatements:
        return _LeaseStatements(self._engine)

    def worker_seen(
        self,
        worker_id: str,
        worker_name: str,
        heard_us: int,
        held: Sequence[str] = (),
        claims_seen: int = 0,
    ) -> list[flow_runs_pb2.FlowRun]:
        """Record a heartbeat of ``worker_id`` heard at ``heard_us`` (epoch microseconds): its
        lease on its claimed runs is renewed from then (a later time already stored stays).

        With ``claims_seen`` equal to the number of claims made for the worker, the worker has
        heard of every run it claimed and lists in ``held`` all it holds: a run leased to it
        and still PENDING that ``held`` leaves out was claimed by an answer lost on its way,
        and goes back to SCHEDULED. Returns those runs. The worker's row, locked by the
        heartbeat's write, keeps a claim from being made between the count and the runs read.
        """
        with self._write_raw() as conn:
            row = conn.first(
                self._lease_statements.seen, _worker_values(worker_id, worker_name, heard_us)
            )
            if not claims_seen or row is None or row["claims"] != claims_seen:
                return []  # a claim's answer may still be on its way (or a stale heartbeat)
            kept = set(held)
            lost = [
                found["id"]
                for found in conn.all(self._lease_statements.claimed, {"b_worker": worker_id})
                if found["id"] not in kept
            ]
            if not lost:
                return []
            message = (
                f"Rescheduled: {worker_name} claimed this run, but the answer never reached it "
                "(its heartbeat, sent after every claim it heard of, does not hold the run); "
                "another poll may take it."
            )
            return self._release_runs(conn, lost, worker_id, message)

    def worker_claims(self, worker_id: str) -> int:
        """How many claims were made for ``worker_id`` (0 for a worker never seen)."""
        with self._read() as conn:
            return int(
                conn.execute(select(workers.c.claims).where(workers.c.id == worker_id)).scalar()
                or 0
            )

    def _lease(
        self, conn: RawTransaction, worker_id: str, worker_name: str, run_ids: Sequence[str]
    ) -> int:
        """Make ``worker_id`` the holder of the runs it just claimed, in the claim's
        transaction. Returns the worker's count of claims, this one included."""
        values = _worker_values(worker_id, worker_name, convert.now_us())
        counted = conn.first(self._lease_statements.count_claim, values)
        own = self._lease_statements.own
        for run_id in run_ids:
            conn.execute(own, {"b_id": run_id, "b_owner": worker_id})
        return int(counted["claims"]) if counted is not None else 0

    def release_dead_workers(
        self,
        lease_us: int,
        why: Callable[[str], str],
        limit: int = 100,
        *,
        decided_us: int | None = None,
    ) -> list[DeadWorker]:
        """Workers unheard of for ``lease_us`` before ``decided_us`` (when the caller decided to
        look, before this call waited behind others; default now): their PENDING runs go back
        to SCHEDULED.

        Each run moves through the ordinary proposal (a history row, a new sequence), owned by
        nobody again, with the message ``why(worker name)``; a run that changed meanwhile (its
        engine started it) is left alone. A worker's row is deleted only if no heartbeat came
        while its runs were released.
        """
        now = convert.now_us() if decided_us is None else decided_us
        with self._read() as read:
            rows = read.execute(
                select(workers)
                .where(workers.c.last_heartbeat_time < now - lease_us)
                .order_by(workers.c.last_heartbeat_time)
                .limit(limit)
            ).all()
        dead = []
        for row in rows:
            worker = DeadWorker(row.id, row.name, row.last_heartbeat_time)
            with self._write_raw() as conn:
                self._release(conn, worker, why(worker.name))
                conn.execute(
                    self._lease_statements.forget,
                    {"b_id": worker.id, "b_seen": worker.last_heartbeat_time},
                )
            dead.append(worker)
        return dead

    def release_claims(
        self, run_ids: Sequence[str], worker_id: str, message: str
    ) -> list[flow_runs_pb2.FlowRun]:
        """Put runs a poll claimed back to SCHEDULED because its caller never got the answer
        (its deadline passed, or it hung up, while the claim waited for the database); the
        runs moved, each as `release_dead_workers` moves a dead worker's.

        ``worker_id`` is the poll's ("" for none): a run no longer PENDING under that claim
        (a later claim, a cancel) is left alone.
        """
        with self._write_raw() as conn:
            return self._release_runs(conn, run_ids, worker_id or None, message)

    def _release(self, conn: RawTransaction, worker: DeadWorker, message: str) -> None:
        found = [
            row["id"] for row in conn.all(self._lease_statements.claimed, {"b_worker": worker.id})
        ]
        worker.released.extend(self._release_runs(conn, found, worker.id, message))

    def _release_runs(
        self, conn: RawTransaction, run_ids: Sequence[str], owner: str | None, message: str
    ) -> list[flow_runs_pb2.FlowRun]:
        """Move those of ``run_ids`` still PENDING and held by ``owner`` back to SCHEDULED."""
        raw = self._raw[FLOW_RUN]
        own = self._lease_statements.own
        proposal = rules.Proposal(type=rules.SCHEDULED, message=message)
        state = states_pb2.State(type=states_pb2.STATE_TYPE_SCHEDULED, message=message)
        released = []
        for run_id in run_ids:
            current = conn.first(raw.lock_run, {"id": run_id, "key": None})
            if (
                current is None
                or current["state_type"] != rules.PENDING
                or current["engine_id"] != owner
            ):
                continue  # started or ended since it was claimed
            result, run, _ = self._decide_and_apply(
                conn, FLOW_RUN, current, state, proposal, convert.now_us()
            )
            if result.decision == states_pb2.DECISION_ACCEPT:
                conn.execute(own, {"b_id": run.id, "b_owner": None})
                released.append(run)
        return released


def _worker_values(worker_id: str, worker_name: str, now: int) -> dict[str, Any]:
    """The bind values of the worker's upserts (`_LeaseStatements.seen`, ``count_claim``)."""
    return {"b_id": worker_id, "b_name": worker_name[:_NAME_LENGTH], "b_now": now}

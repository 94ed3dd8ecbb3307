"""Claims of due runs in storage (``claim_due_runs``), on real SQLite and PostgreSQL.

A claim is one transaction of a few statements, whatever it finds. A claim that finds nothing
due says when its poller should look again: its scope's next run, found from a bounded window
of the runs scheduled ahead (read in time order from the due-runs index) however many runs are
ahead and whatever join PostgreSQL's planner picks. That read used to join every future run
with its deployment and sort them: with an hour of 1,000 deployments' runs ahead it took 100 ms
to seconds per empty poll on PostgreSQL, and the long poll answered in batches, seconds late.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from headwater.v1 import deployments_pb2, work_pools_pb2
from headwater_server.storage._workers import NEXT_DUE_WINDOW, ClaimTarget
from headwater_server.storage.fastpath import Prepared, RawTransaction
from sync_application import SyncApplication

D = deployments_pb2


class _Recorded(RawTransaction):
    """A fast-path transaction that records its statements (SQL and driver parameters)."""

    log: list[tuple[_Recorded, str, Any]] = []

    def _note(self, statement: Prepared, values: Mapping[str, Any]) -> None:
        _Recorded.log.append((self, statement.sql, statement.parameters(values)))

    def execute(self, statement: Prepared, values: Mapping[str, Any]) -> int:
        self._note(statement, values)
        return super().execute(statement, values)

    def execute_many(self, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self._note(statement, row)
        super().execute_many(statement, rows)

    def first(self, statement: Prepared, values: Mapping[str, Any]) -> dict[str, Any] | None:
        self._note(statement, values)
        return super().first(statement, values)

    def all(self, statement: Prepared, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._note(statement, values)
        return super().all(statement, values)


@pytest.fixture
def recorded(database: Any) -> Iterator[list[tuple[_Recorded, str, Any]]]:
    """The statements of the database's fast-path transactions from now on."""
    database.trace(_Recorded)
    _Recorded.log = []
    yield _Recorded.log


def _deployment(application: SyncApplication, **fields: Any) -> D.Deployment:
    fields.setdefault("flow_name", f"etl-{uuid.uuid4().hex[:6]}")
    fields.setdefault("name", "nightly")
    request = D.CreateDeploymentRequest(deployment=D.Deployment(**fields))
    return application.create_deployment(request).deployment  # type: ignore[no-any-return]


def _runs_at(application: SyncApplication, deployment_id: str, times: list[datetime]) -> None:
    runs = []
    for moment in times:
        run = D.DeploymentRun()
        run.scheduled_time.FromDatetime(moment)
        runs.append(run)
    application.batch_create_flow_runs_from_deployment(
        D.BatchCreateFlowRunsFromDeploymentRequest(deployment_id=deployment_id, runs=runs)
    )


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def test_an_empty_claim_names_its_scopes_next_run_even_behind_other_scopes_runs(
    application: SyncApplication, repository: Any
) -> None:
    application.create_work_pool(
        work_pools_pb2.CreateWorkPoolRequest(work_pool=work_pools_pb2.WorkPool(name="claims"))
    )
    pooled = _deployment(application, work_pool_name="claims")
    served = _deployment(application)
    idle = _deployment(application)
    start = datetime.now(UTC) + timedelta(hours=1)
    # More of the served deployment's runs are ahead than one window holds, before any other.
    served_times = [start + timedelta(seconds=i) for i in range(NEXT_DUE_WINDOW + 5)]
    _runs_at(application, served.id, served_times)
    pooled_time = start + timedelta(hours=1)
    _runs_at(application, pooled.id, [pooled_time])

    def next_due(target: ClaimTarget) -> int | None:
        claim = repository.claim_due_runs(target, 10, "w")
        assert claim.runs == ()
        return claim.next_due_us  # type: ignore[no-any-return]

    assert next_due(ClaimTarget(deployment_ids=(served.id,))) == _us(served_times[0])
    # Past the window: no run of the scope is due before its last run, so look again then.
    window_end = _us(served_times[NEXT_DUE_WINDOW - 1])
    assert next_due(ClaimTarget(work_pool_name="claims")) == window_end
    assert next_due(ClaimTarget(deployment_ids=(pooled.id,))) == window_end
    assert next_due(ClaimTarget(deployment_ids=(idle.id,))) == window_end


def test_an_empty_claim_of_a_scope_with_nothing_ahead_names_no_time(
    application: SyncApplication, repository: Any
) -> None:
    served = _deployment(application)
    other = _deployment(application)
    _runs_at(application, other.id, [datetime.now(UTC) + timedelta(minutes=5)])

    claim = repository.claim_due_runs(ClaimTarget(deployment_ids=(served.id,)), 1, "w")

    assert claim.runs == ()
    assert claim.next_due_us is None


def test_a_claim_is_one_transaction_of_a_few_statements(
    application: SyncApplication, repository: Any, recorded: list[tuple[Any, str, Any]]
) -> None:
    served = _deployment(application)
    _runs_at(application, served.id, [datetime.now(UTC) - timedelta(seconds=1)])
    target = ClaimTarget(deployment_ids=(served.id,))
    worker = str(uuid.uuid4())

    del recorded[:]
    [(run, deployment)] = repository.claim_due_runs(target, 5, "w", worker).runs
    # Which deployments exist; the due runs, read whole and locked; the run's history row and
    # row; the lease (the worker's row and the run's owner); the deployment with its schedules.
    assert len(recorded) <= 7
    assert len({id(transaction) for transaction, _, _ in recorded}) == 1
    assert deployment.id == served.id and run.deployment_id == served.id

    del recorded[:]
    assert repository.claim_due_runs(target, 5, "w", worker).runs == ()
    # Which deployments exist; the due runs (none); when the next is due.
    assert len(recorded) <= 3
    assert len({id(transaction) for transaction, _, _ in recorded}) == 1


# Runs ahead in the plan test: enough that reading them all costs more than a window.
_DEPLOYMENTS = 6
_RUNS_EACH = 500


def _rows_read_from(plan: Mapping[str, Any], table: str) -> int:
    """How many rows the plan's nodes over ``table`` returned, all loops counted."""
    rows = 0
    if plan.get("Relation Name") == table:
        rows += int(plan["Actual Rows"]) * int(plan["Actual Loops"])
    for child in plan.get("Plans", ()):
        rows += _rows_read_from(child, table)
    return rows


@pytest.mark.parametrize(
    "planner",
    [
        "",
        "SET LOCAL enable_nestloop = off",
        "SET LOCAL enable_nestloop = off; SET LOCAL enable_hashjoin = off",
    ],
    ids=["default", "hash join", "merge join"],
)
def test_finding_the_next_run_due_reads_one_window_of_runs_whatever_the_join(
    application: SyncApplication,
    repository: Any,
    database: Any,
    recorded: list[tuple[Any, str, Any]],
    planner: str,
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the join PostgreSQL's planner picks; SQLite's reads the index in order")
    application.create_work_pool(
        work_pools_pb2.CreateWorkPoolRequest(work_pool=work_pools_pb2.WorkPool(name="ahead"))
    )
    start = datetime.now(UTC) + timedelta(minutes=1)
    for index in range(_DEPLOYMENTS):
        deployment = _deployment(application, work_pool_name="ahead")
        _runs_at(
            application,
            deployment.id,
            [start + timedelta(seconds=index + _DEPLOYMENTS * i) for i in range(_RUNS_EACH)],
        )
    raw = database.engine.raw_connection()
    try:
        raw.cursor().execute("ANALYZE flow_runs")  # statistics as the autovacuum daemon keeps
        raw.commit()
    finally:
        raw.close()
    del recorded[:]
    assert repository.claim_due_runs(ClaimTarget(work_pool_name="ahead"), 1, "w").runs == ()
    [(sql, parameters)] = [(sql, params) for _, sql, params in recorded if " ahead" in sql]

    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for setting in filter(None, planner.split("; ")):
            cursor.execute(setting)
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, parameters)
        [[explained]] = cursor.fetchall()
        raw.rollback()
    finally:
        raw.close()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    # Thousands of runs ahead of the pool's queue; one window of them is read.
    assert _rows_read_from(plan, "flow_runs") <= NEXT_DUE_WINDOW

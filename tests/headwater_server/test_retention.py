"""Retention: finished runs (with all they own) and old log lines expire, on SQLite and PostgreSQL.

Storage's batched deletes, the housekeeping pass that drains them, and a real server whose
settings turn the loop on.
"""

from __future__ import annotations

import asyncio
import time

from headwater.v1 import flow_runs_pb2, logs_pb2, states_pb2, task_runs_pb2
from headwater_server.housekeeping import Expired, expire_old_data
from headwater_server.server import start_server
from headwater_server.settings import ServerSettings
from headwater_server.storage import convert, schema
from headwater_server.storage.database import Database
from headwater_server.storage.repository import Repository
from sqlalchemy import Table, func, select

RUNNING = states_pb2.STATE_TYPE_RUNNING
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
FAILED = states_pb2.STATE_TYPE_FAILED
CANCELLED = states_pb2.STATE_TYPE_CANCELLED


def count(database: Database, table: Table, *where: object) -> int:
    query = select(func.count()).select_from(table)
    if where:
        query = query.where(*where)  # type: ignore[arg-type]
    with database.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def flow_run(repo: Repository, *states: int, parent_task_run_id: str = "") -> str:
    """A flow run moved through ``states``, with two task runs of its own and a log line each."""
    run = repo.create_flow_run(flow_runs_pb2.CreateFlowRunRequest(flow_name="etl")).flow_run
    for number in range(2):
        task = repo.create_task_run(
            task_runs_pb2.CreateTaskRunRequest(
                flow_run_id=run.id, task_key="extract", dynamic_key=str(number), start=True
            )
        ).task_run
        repo.set_task_run_state(
            task_runs_pb2.SetTaskRunStateRequest(
                task_run_id=task.id, state=states_pb2.State(type=COMPLETED)
            )
        )
        log(repo, f"task {number} done", flow_run_id=run.id, task_run_id=task.id)
    log(repo, "flow says hello", flow_run_id=run.id)
    for state_type in states:
        response = repo.set_flow_run_state(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run.id, state=states_pb2.State(type=state_type)
            )
        )
        assert response.result.decision == states_pb2.DECISION_ACCEPT
    return run.id


def task_run_outside_flows(repo: Repository, *states: int) -> str:
    task = repo.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(task_key="alone", dynamic_key="0")
    ).task_run
    for state_type in states:
        repo.set_task_run_state(
            task_runs_pb2.SetTaskRunStateRequest(
                task_run_id=task.id, state=states_pb2.State(type=state_type)
            )
        )
    log(repo, "alone", task_run_id=task.id)
    return task.id


def log(repo: Repository, message: str, **owner: str) -> None:
    repo.create_logs(
        logs_pb2.CreateLogsRequest(logs=[logs_pb2.Log(level=20, message=message, **owner)])
    )


def later_than_now() -> int:
    """A moment after everything stored so far (the clock has microseconds; make sure)."""
    time.sleep(0.002)
    moment = convert.now_us()
    time.sleep(0.002)
    return moment


def test_finished_flow_runs_go_with_everything_they_own(database: Database) -> None:
    repo = database.repository
    completed = flow_run(repo, RUNNING, COMPLETED)
    failed = flow_run(repo, RUNNING, FAILED)
    cancelled = flow_run(repo, CANCELLED)  # cancelled before it started: no end_time
    cutoff = later_than_now()
    finished_later = flow_run(repo, RUNNING, COMPLETED)
    still_running = flow_run(repo, RUNNING)
    never_started = flow_run(repo)

    assert repo.expire_flow_runs(cutoff, limit=100) == 3

    kept = {finished_later, still_running, never_started}
    assert {row.id for row in _rows(database, schema.flow_runs)} == kept
    gone = [completed, failed, cancelled]
    for table in (schema.flow_run_states, schema.task_runs, schema.logs):
        assert count(database, table, table.c.flow_run_id.in_(gone)) == 0
        assert count(database, table, table.c.flow_run_id.in_(kept)) > 0
    # The task runs' own histories went with them (their ids are known only through the rows).
    task_ids = {row.id for row in _rows(database, schema.task_runs)}
    assert {row.task_run_id for row in _rows(database, schema.task_run_states)} == task_ids
    assert count(database, schema.logs) == 3 * 3  # three lines for each kept run


def test_runs_are_expired_a_batch_at_a_time_oldest_first(database: Database) -> None:
    repo = database.repository
    runs = [flow_run(repo, RUNNING, COMPLETED) for _ in range(5)]
    cutoff = later_than_now()
    assert repo.expire_flow_runs(cutoff, limit=2) == 2
    assert {row.id for row in _rows(database, schema.flow_runs)} == set(runs[2:])
    assert repo.expire_flow_runs(cutoff, limit=2) == 2
    assert repo.expire_flow_runs(cutoff, limit=2) == 1
    assert repo.expire_flow_runs(cutoff, limit=2) == 0


def test_a_subflow_run_is_expired_by_its_own_age(database: Database) -> None:
    repo = database.repository
    parent = flow_run(repo, RUNNING)
    child = repo.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="child", parent_flow_run_id=parent)
    ).flow_run.id
    repo.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=child, state=states_pb2.State(type=CANCELLED)
        )
    )
    assert repo.expire_flow_runs(later_than_now(), limit=10) == 1
    assert {row.id for row in _rows(database, schema.flow_runs)} == {parent}


def test_task_runs_outside_flows_expire_with_their_states_and_lines(database: Database) -> None:
    repo = database.repository
    finished = task_run_outside_flows(repo, RUNNING, COMPLETED)
    running = task_run_outside_flows(repo, RUNNING)
    cutoff = later_than_now()
    finished_later = task_run_outside_flows(repo, RUNNING, FAILED)

    assert repo.expire_task_runs_outside_flows(cutoff, limit=10) == 1

    assert {row.id for row in _rows(database, schema.task_runs)} == {running, finished_later}
    states = schema.task_run_states
    assert count(database, states, states.c.task_run_id == finished) == 0
    assert count(database, schema.logs, schema.logs.c.task_run_id == finished) == 0
    assert count(database, schema.logs, schema.logs.c.task_run_id == running) == 1


def test_old_log_lines_expire_even_for_runs_that_are_kept(database: Database) -> None:
    repo = database.repository
    running = flow_run(repo, RUNNING)
    cutoff = later_than_now()
    log(repo, "recent", flow_run_id=running)

    assert repo.expire_logs(cutoff, limit=2) == 2
    assert repo.expire_logs(cutoff, limit=2) == 1
    assert repo.expire_logs(cutoff, limit=2) == 0
    assert [row.message for row in _rows(database, schema.logs)] == ["recent"]
    assert count(database, schema.flow_runs) == 1
    assert count(database, schema.task_runs) == 2


def test_a_pass_drains_every_batch_and_writers_keep_going_meanwhile(database: Database) -> None:
    repo = database.repository
    old = [flow_run(repo, RUNNING, COMPLETED) for _ in range(12)]
    task_run_outside_flows(repo, RUNNING, COMPLETED)

    async def main() -> tuple[Expired, list[str]]:
        async def write() -> list[str]:
            created = []
            for _ in range(20):
                response = await database.run(
                    repo.create_flow_run, flow_runs_pb2.CreateFlowRunRequest(flow_name="new")
                )
                created.append(response.flow_run.id)
            return created

        # One run per batch: the pass takes many turns on the database, writers between them.
        expired, created = await asyncio.gather(
            expire_old_data(database, 1e-6, None, batch_size=1), write()
        )
        return expired, created

    expired, created = asyncio.run(main())
    assert expired == Expired(flow_runs=12, task_runs=1, logs=0)
    assert {row.id for row in _rows(database, schema.flow_runs)} == set(created)
    assert not set(old) & {row.id for row in _rows(database, schema.flow_runs)}


def test_a_pass_without_retention_deletes_nothing(database: Database) -> None:
    repo = database.repository
    flow_run(repo, RUNNING, COMPLETED)
    assert asyncio.run(expire_old_data(database, None, None)) == Expired()
    # A retention far longer than the runs' age keeps them too.
    assert asyncio.run(expire_old_data(database, 3600, 3600)) == Expired()
    assert count(database, schema.flow_runs) == 1
    assert count(database, schema.logs) == 3


def test_a_server_with_retention_set_expires_finished_runs(sqlite_url: str) -> None:
    async def main() -> None:
        settings = ServerSettings(
            database_url=sqlite_url,
            run_retention_seconds=0.001,
            log_retention_seconds=3600,
            retention_loop_seconds=0.05,
        )
        server = await start_server("127.0.0.1:0", settings)
        try:
            db = server._backend.db
            assert "retention" in {task.get_name() for task in server._upkeep}
            await db.run(flow_run, db.repository, RUNNING, COMPLETED)
            running = await db.run(flow_run, db.repository, RUNNING)
            for _ in range(200):
                if count(db, schema.flow_runs) == 1:
                    break
                await asyncio.sleep(0.05)
            assert {row.id for row in _rows(db, schema.flow_runs)} == {running}
        finally:
            await server.stop()
        assert all(task.done() for task in server._upkeep)

    asyncio.run(main())


def test_a_server_without_retention_runs_no_expiry_loop(sqlite_url: str) -> None:
    async def main() -> None:
        server = await start_server("127.0.0.1:0", ServerSettings(database_url=sqlite_url))
        try:
            assert "retention" not in {task.get_name() for task in server._upkeep}
        finally:
            await server.stop()

    asyncio.run(main())


def _rows(database: Database, table: Table) -> list[object]:
    with database.engine.connect() as conn:
        return list(conn.execute(select(table)).all())

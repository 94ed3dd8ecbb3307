"""The housekeeping loop keeps the request log from growing with every state change."""

from __future__ import annotations

import asyncio
import uuid

from headwater.v1 import flow_runs_pb2, states_pb2
from headwater_server.housekeeping import prune_request_log_forever
from headwater_server.server import start_server
from headwater_server.settings import ServerSettings
from headwater_server.storage import schema
from headwater_server.storage.database import Database
from sqlalchemy import func, select


def stored_answers(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.request_log)).scalar_one())


def test_the_loop_prunes_old_answers_and_keeps_running(database: Database) -> None:
    repo = database.repository
    run = repo.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", request_id=str(uuid.uuid4()))
    ).flow_run
    repo.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run.id,
            state=states_pb2.State(type=states_pb2.STATE_TYPE_RUNNING),
            transition_id=str(uuid.uuid4()),
        )
    )
    assert stored_answers(database) == 2

    async def main() -> None:
        loop_task = asyncio.create_task(
            prune_request_log_forever(database, retention_seconds=0, interval_seconds=0.05)
        )
        for _ in range(100):
            await asyncio.sleep(0.05)
            if stored_answers(database) == 0:
                break
        assert not loop_task.done(), "the loop must keep running after a pass"
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)

    asyncio.run(main())
    assert stored_answers(database) == 0
    # The run itself and its history are untouched.
    assert (
        repo.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run.id)).flow_run.run_count
        == 1
    )


def test_a_server_keeps_recent_answers_and_stops_its_loop(sqlite_url: str) -> None:
    async def main() -> None:
        settings = ServerSettings(database_url=sqlite_url, request_log_retention_seconds=3600)
        server = await start_server("127.0.0.1:0", settings)
        try:
            db = server._backend.db
            await db.run(
                db.repository.create_flow_run,
                flow_runs_pb2.CreateFlowRunRequest(flow_name="etl", request_id=str(uuid.uuid4())),
            )
            await asyncio.sleep(0.2)  # the first pass runs at start
            assert stored_answers(db) == 1
        finally:
            await server.stop()
        assert all(task.done() for task in server._upkeep)

    asyncio.run(main())

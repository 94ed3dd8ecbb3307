"""The real server in this process, and the stream requests the connection and client tests share.

`InProcessServer` runs ``start_server`` on the SDK's background loop (SQLite in a temporary
directory), so a test can stop and restart it on the same port; the helpers send requests
over an `EngineConnection`. Used by tests/headwater/test_client.py and
tests/headwater/_transport/test_stream_connection.py (fixtures in tests/headwater/conftest.py).
"""

from __future__ import annotations

import time

from headwater._transport.runtime import background_loop
from headwater._transport.stream.connection import EngineConnection
from headwater.v1 import flow_runs_pb2, logs_pb2, states_pb2

RUNNING = states_pb2.STATE_TYPE_RUNNING
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
PENDING = states_pb2.STATE_TYPE_PENDING
ACCEPT = states_pb2.DECISION_ACCEPT


class InProcessServer:
    """The real server on the SDK's background loop, restartable on the same port."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.port = 0
        self.address = ""
        self._running = None

    def start(self) -> InProcessServer:
        from headwater_server.server import start_server

        self._running = background_loop().run_sync(
            start_server(f"127.0.0.1:{self.port}", self.database_url), timeout=30
        )
        self.port = self._running.port
        self.address = self._running.address
        return self

    def stop(self, grace: float = 1.0) -> None:
        running, self._running = self._running, None
        if running is not None:
            background_loop().run_sync(running.stop(grace), timeout=30)


def new_run(conn: EngineConnection, flow_name: str = "client-tests", **fields) -> str:
    response = conn.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name=flow_name, **fields)
    )
    return response.flow_run.id


def propose(conn: EngineConnection, run_id: str, state_type: int, **fields):
    return conn.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id, state=states_pb2.State(type=state_type), **fields
        )
    )


def log_request(run_id: str, *messages: str) -> logs_pb2.CreateLogsRequest:
    """Log lines stamped a microsecond apart, so the service lists them in this order."""
    request = logs_pb2.CreateLogsRequest()
    for message in messages:
        line = request.logs.add(flow_run_id=run_id, logger_name="test", level=20, message=message)
        line.log_time.FromNanoseconds(time.time_ns() // 1000 * 1000)
        time.sleep(0.000_002)
    return request


def stream_get(connection: EngineConnection, run_id: str) -> None:
    connection.get_flow_run(flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id))

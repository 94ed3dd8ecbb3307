"""`WorkerConnection.send_heartbeat` against a real server: a runner's heartbeat that does not
wait for its answer (a runner sends the next one on time while the service is slow to
answer), whose answer or error still comes back through its callback."""

from __future__ import annotations

import queue
import uuid

import pytest
from headwater._transport.client_workers import WorkerConnection
from headwater.exceptions import ServiceError
from server_harness import ServerProcess, free_port

pytestmark = pytest.mark.integration

# Generous: the machine running the tests may be busy. Nothing here measures speed.
ANSWER_SECONDS = 60.0

Answer = tuple[list[str] | None, Exception | None]


def _answer_of(connection: WorkerConnection, flow_run_ids: list[str]) -> Answer:
    answers: queue.SimpleQueue[Answer] = queue.SimpleQueue()
    connection.send_heartbeat(flow_run_ids, lambda stop, error: answers.put((stop, error)))
    return answers.get(timeout=ANSWER_SECONDS)


def test_a_sent_heartbeat_answers_the_runs_to_stop(sqlite_server: ServerProcess) -> None:
    connection = WorkerConnection("w", sqlite_server.address, str(uuid.uuid4()))
    gone = str(uuid.uuid4())
    try:
        assert _answer_of(connection, [gone]) == ([gone], None)
    finally:
        connection.close()


def test_a_sent_heartbeat_that_reaches_no_server_answers_its_error() -> None:
    connection = WorkerConnection("w", f"127.0.0.1:{free_port()}", str(uuid.uuid4()))
    try:
        stop, error = _answer_of(connection, [])
    finally:
        connection.close()
    assert stop is None and isinstance(error, ServiceError)

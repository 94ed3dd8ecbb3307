"""The server as a process: its start line, a clean SIGTERM, and a clear error on a busy port."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from headwater.v1 import flow_runs_pb2
from rpc_helpers import Api, EngineStream
from server_harness import ServerFactory, server_command

pytestmark = pytest.mark.integration

FR = flow_runs_pb2


def test_the_start_line_names_the_address_and_the_database(make_server: ServerFactory) -> None:
    server = make_server()
    assert (
        f"Headwater server listening on {server.address}, database {server.database_url}"
        in server.output()
    )


def test_sigterm_lets_in_flight_calls_finish_and_exits_zero(make_server: ServerFactory) -> None:
    server = make_server()
    with server.channel() as channel:
        api = Api(channel)
        run = api.new_run(api.new_flow().id)
        stream = EngineStream(api)
        assert stream.call(get_flow_run=FR.GetFlowRunRequest(flow_run_id=run.id)).get_flow_run
        poll_result: list[object] = []

        def long_poll() -> None:
            try:
                poll_result.append(
                    api.flow_runs.ListFlowRunEvents(
                        FR.ListFlowRunEventsRequest(
                            flow_run_id=run.id,
                            after_sequence=1,
                            wait=duration_pb2.Duration(seconds=30),
                        ),
                        timeout=40,
                    )
                )
            except grpc.RpcError as exc:
                poll_result.append(exc)

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert server.stop() == 0
        poller.join(10)
        assert time.monotonic() - started < 10
        # The long poll was answered (empty), not cut off.
        assert isinstance(poll_result[0], FR.ListFlowRunEventsResponse), poll_result
        # The engine stream was told to reconnect.
        with pytest.raises(grpc.RpcError) as caught:
            stream.receive()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    output = server.output()
    assert "Headwater server shutting down" in output and "Headwater server stopped." in output
    assert "Traceback" not in output


def test_a_busy_port_fails_with_a_clear_message(make_server: ServerFactory) -> None:
    server = make_server()
    env = dict(os.environ, HEADWATER_HOME=str(server.home))
    result = subprocess.run(
        server_command("127.0.0.1", server.port),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{server.port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.running


def test_python_dash_m_help_describes_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headwater_server", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for option in ("--host", "--port", "--database-url"):
        assert option in result.stdout


def test_an_unreachable_database_fails_with_a_clear_message(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:1/nowhere"
    result = subprocess.run(
        [*server_command("127.0.0.1", 0), "--database-url", url],
        env=dict(os.environ, HEADWATER_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Cannot open the database postgresql+psycopg://postgres:***@127.0.0.1:1" in result.stderr
    assert "secret" not in result.stderr

"""The flow engine against a real server subprocess (SQLite and PostgreSQL), over TCP.

The SDK is pointed at the server with HEADWATER_API_URL, as a user would. Besides the common
behaviour (results, retries, timeouts, subflows, logs), these tests cover what needs a process
boundary: SIGTERM in a process running a flow, two processes racing to run one run, and a
server restart in the middle of a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Reader, current_run_id, sdk_target, unique
from headwater import flow
from headwater._logging import get_run_logger
from headwater.exceptions import FlowRunTimeoutError, ParameterTypeError

pytestmark = pytest.mark.integration

SLEEPER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from headwater import flow
    from headwater._context import FlowRunContext

    @flow(name=sys.argv[1])
    def sleeper():
        print("RUN", FlowRunContext.get().flow_run.id, flush=True)
        time.sleep(60)

    sleeper()
    """
)

RACER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from headwater import flow
    from headwater._flows import run_flow
    from headwater.exceptions import Abort

    marker = sys.argv[2]

    @flow(name=sys.argv[1])
    def once(x: int) -> int:
        with open(marker, "a") as handle:
            handle.write(f"ran {x}\\n")
        time.sleep(1.0)
        return x

    print("READY", flush=True)
    sys.stdin.readline()  # start together
    try:
        print("RESULT", run_flow(once, None, flow_run_id=sys.argv[3]), flush=True)
    except Abort as exc:
        print("ABORT", exc, flush=True)
    """
)


@pytest.fixture(scope="module")
def reader(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    """The SDK pointed at the module's server subprocess, and a reader for it."""
    with sdk_target(tmp_path_factory.mktemp("engine-client-home"), api_url=server.address):
        reader = Reader()
        yield reader
        reader.close()


def _env_for(address: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HEADWATER_API_URL"] = address
    env["HEADWATER_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_sync_and_async_flows_are_stored(reader: Reader) -> None:
    seen: list[str] = []

    @flow(name=unique())
    def add(x: int, y: int = 2) -> int:
        seen.append(current_run_id())
        return x + y

    @flow(name=unique())
    async def aadd(x: int) -> int:
        seen.append(current_run_id())
        return x + 1

    assert add(1) == 3
    assert asyncio.run(aadd(1)) == 2
    for run_id in seen:
        assert reader.history(run_id) == ["Pending", "Running", "Completed"]
    assert json.loads(reader.run(seen[0]).state.result.json) == 3


def test_retries_history_and_run_count(reader: Reader) -> None:
    attempts: list[str] = []

    @flow(name=unique(), retries=2, retry_delay_seconds=0.2)
    def flaky() -> int:
        attempts.append(current_run_id())
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return len(attempts)

    assert flaky() == 3
    run = reader.run(attempts[0])
    assert run.run_count == 3
    assert reader.history(run.id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]


def test_timeout_marks_the_run_failed(reader: Reader) -> None:
    seen: list[str] = []

    @flow(name=unique(), timeout_seconds=0.3)
    def sleepy() -> None:
        seen.append(current_run_id())
        time.sleep(10)

    with pytest.raises(FlowRunTimeoutError):
        sleepy()
    run = reader.run(seen[0])
    assert reader.state_type(run.id) == "FAILED"
    assert "exceeded timeout of 0.3 seconds" in run.state.message


def test_subflow_parent_link_and_logs(reader: Reader) -> None:
    ids: dict[str, str] = {}

    @flow(name=unique("child"), log_prints=True)
    def child() -> None:
        ids["child"] = current_run_id()
        print("printed by the child")

    @flow(name=unique("parent"))
    def parent() -> None:
        ids["parent"] = current_run_id()
        get_run_logger().info("logged by the parent")
        child()

    parent()
    assert reader.run(ids["child"]).parent_flow_run_id == ids["parent"]
    assert "printed by the child" in reader.log_messages(ids["child"])
    assert "logged by the parent" in reader.log_messages(ids["parent"])


def test_validation_failure_and_keyboard_interrupt(reader: Reader) -> None:
    name = unique()

    @flow(name=name)
    def typed(x: int) -> None: ...

    with pytest.raises(ParameterTypeError):
        typed("x")
    assert reader.state_type(reader.only_run_of(name).id) == "FAILED"

    seen: list[str] = []

    @flow(name=unique())
    def interrupted() -> None:
        seen.append(current_run_id())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert reader.state_type(seen[0]) == "CRASHED"


def test_persisted_result(reader: Reader, tmp_path: Path) -> None:
    seen: list[str] = []

    @flow(name=unique(), persist_result=True, result_storage=str(tmp_path))
    def make() -> dict[str, int]:
        seen.append(current_run_id())
        return {"n": 1}

    assert make() == {"n": 1}
    reference = reader.run(seen[0]).state.result.reference
    assert reference.storage_uri.startswith("file://")


def test_sigterm_marks_the_run_crashed(server: Any, reader: Reader, tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER_SCRIPT)
    name = unique("sigterm")
    process = subprocess.Popen(
        [sys.executable, str(script), name],
        env=_env_for(server.address, tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("RUN "), line + process.stderr.read()  # type: ignore[union-attr]
        run_id = line.split()[1]
        assert reader.state_type(run_id) == "RUNNING"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "TerminationSignal" in stderr
    run = reader.run(run_id)
    assert reader.state_type(run_id) == "CRASHED"
    assert "signal 15" in run.state.message


def test_two_processes_racing_for_one_run_run_it_once(
    server: Any, reader: Reader, tmp_path: Path
) -> None:
    from headwater._transport.runtime import default_transport
    from headwater.v1 import flow_runs_pb2

    name = unique("race")
    created = (
        default_transport()
        .connection.create_flow_run(
            flow_runs_pb2.CreateFlowRunRequest(flow_name=name, parameters_json='{"x": 3}')
        )
        .flow_run
    )
    script = tmp_path / "racer.py"
    script.write_text(RACER_SCRIPT)
    marker = tmp_path / "executions.txt"
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), name, str(marker), created.id],
            env=_env_for(server.address, tmp_path / f"home{i}"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "READY"  # type: ignore[union-attr]
        for process in processes:
            process.stdin.write("go\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    results = sorted(out.strip().split()[0] for out, _ in outputs)
    assert results == ["ABORT", "RESULT"], outputs
    assert marker.read_text().splitlines() == ["ran 3"]
    run = reader.run(created.id)
    assert reader.state_type(created.id) == "COMPLETED"
    assert run.run_count == 1


def test_server_restart_during_a_run_does_not_fail_it(make_server: Any, tmp_path: Path) -> None:
    own = make_server()
    with sdk_target(tmp_path / "client-home", api_url=own.address):
        reader = Reader()
        try:
            seen: list[str] = []
            restarted = threading.Event()

            def restart_soon() -> None:
                time.sleep(0.3)
                own.restart()
                restarted.set()

            @flow(name=unique("restart"))
            def patient() -> str:
                seen.append(current_run_id())
                threading.Thread(target=restart_soon, daemon=True).start()
                assert restarted.wait(30), "the server did not restart"
                get_run_logger().info("after the restart")
                return "survived"

            assert patient() == "survived"
            run = reader.run(seen[0])
            assert reader.state_type(run.id) == "COMPLETED"
            assert reader.history(run.id) == ["Pending", "Running", "Completed"]
            assert "after the restart" in reader.log_messages(run.id)
        finally:
            reader.close()

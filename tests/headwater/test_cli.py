"""The ``headwater`` command, run for real in a subprocess against a real server subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from headwater._transport.runtime import connect
from headwater._transport.stream.connection import EngineConnection
from headwater.v1 import flow_runs_pb2, logs_pb2, states_pb2, task_runs_pb2

pytestmark = pytest.mark.integration

RUNNING = states_pb2.STATE_TYPE_RUNNING
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
FAILED = states_pb2.STATE_TYPE_FAILED


def headwater_command() -> list[str]:
    """The installed console script, or the module when the script is not on disk."""
    script = Path(sys.executable).with_name("headwater")
    if script.exists():
        return [str(script)]
    found = shutil.which("headwater")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from headwater.cli import main; sys.exit(main())"]


def cli_env(api_url: str | None, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.pop("COLUMNS", None)
    env["HEADWATER_HOME"] = str(home)
    if api_url is not None:
        env["HEADWATER_API_URL"] = api_url
    return env


def run_cli(
    *args: str, api_url: str | None, home: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*headwater_command(), *args],
        env=cli_env(api_url, home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def conn(sqlite_server) -> EngineConnection:
    connection = connect(sqlite_server.address, retry_timeout=10, keepalive_time_ms=20000)
    yield connection
    connection.close()


def section(out: str, title: str) -> list[str]:
    """The lines of one part of `flow-run inspect`: from its title to the next blank line."""
    lines = out.split(title, 1)[1].splitlines()[1:]
    return lines[: lines.index("")] if "" in lines else lines


def make_run(
    conn: EngineConnection, flow: str, *states: int, message: str = "", name: str = ""
) -> str:
    run_id = conn.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name=flow, name=name)
    ).flow_run.id
    for state_type in states:
        conn.set_flow_run_state(
            flow_runs_pb2.SetFlowRunStateRequest(
                flow_run_id=run_id, state=states_pb2.State(type=state_type, message=message)
            )
        )
    return run_id


def test_ls_lists_runs_with_filters(conn, sqlite_server, tmp_path: Path) -> None:
    flow = f"cli-ls-{uuid.uuid4().hex[:6]}"
    done = make_run(conn, flow, RUNNING, COMPLETED)
    failed = make_run(conn, flow, RUNNING, FAILED)
    pending = make_run(conn, flow)

    result = run_cli("flow-run", "ls", "--flow", flow, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "FLOW", "STATE", "RUNS", "CREATED", "DURATION"]
    # Newest first, one whole row per run.
    assert [line.split()[0] for line in lines[1:]] == [pending, failed, done]
    assert "Completed" in lines[3] and flow in lines[3]
    assert "Failed" in lines[2]
    assert "Pending" in lines[1]

    result = run_cli(
        "flow-run", "ls", "--flow", flow, "--state", "failed", "--state", "COMPLETED",
        api_url=sqlite_server.address, home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {line.split()[0] for line in result.stdout.splitlines()[1:]} == {done, failed}

    result = run_cli(
        "flow-run", "ls", "--flow", flow, "--limit", "1", api_url=sqlite_server.address,
        home=tmp_path,
    )  # fmt: skip
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == [pending]


def test_ls_says_when_nothing_matches(sqlite_server, tmp_path: Path) -> None:
    result = run_cli(
        "flow-run", "ls", "--flow", "no-such-flow", api_url=sqlite_server.address, home=tmp_path
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "No flow runs found."


def test_ls_refuses_an_unknown_state(sqlite_server, tmp_path: Path) -> None:
    result = run_cli(
        "flow-run", "ls", "--state", "sideways", api_url=sqlite_server.address, home=tmp_path
    )
    assert_one_error_line(result, "sideways", "COMPLETED")


def test_inspect_shows_details_and_history(conn, sqlite_server, tmp_path: Path) -> None:
    flow = f"cli-inspect-{uuid.uuid4().hex[:6]}"
    run_id = make_run(conn, flow, RUNNING)
    make_state = flow_runs_pb2.SetFlowRunStateRequest(
        flow_run_id=run_id,
        state=states_pb2.State(
            type=FAILED,
            message="it broke",
            failure=states_pb2.Failure(exception_type="builtins.ValueError", message="bad"),
        ),
    )
    conn.set_flow_run_state(make_state)

    result = run_cli("flow-run", "inspect", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert run_id in out
    assert flow in out
    assert "builtins.ValueError: bad" in out
    assert "State history" in out
    history = section(out, "State history")[1:]
    assert [line.split()[2] for line in history] == ["Pending", "Running", "Failed"]
    assert "it broke" in history[2]
    assert "Logs: none" in out
    assert "Result" not in out  # a failed run has none


@pytest.mark.parametrize(
    ("final", "exit_code"), [(COMPLETED, 0), (FAILED, 1)], ids=["completed", "failed"]
)
def test_watch_a_finished_run_replays_it(
    conn, sqlite_server, tmp_path: Path, final: int, exit_code: int
) -> None:
    run_id = make_run(conn, "cli-watch", RUNNING, final)
    result = run_cli("flow-run", "watch", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == exit_code, result.stderr
    lines = result.stdout.splitlines()
    assert run_id in lines[0]
    assert [line.split()[2] for line in lines[1:4]] == [
        "Pending",
        "Running",
        "Completed" if final == COMPLETED else "Failed",
    ]
    assert lines[1].split()[1] == "#1"
    assert lines[-1].startswith("Flow run finished:")


def test_watch_shows_task_run_states_and_ends_with_the_flows_own(
    sqlite_server, tmp_path: Path
) -> None:
    script = (
        "from headwater import flow, runtime, task\n"
        "@task\n"
        "def load(n: int) -> int:\n"
        "    return n\n"
        "@flow\n"
        "def etl() -> int:\n"
        "    print(runtime.flow_run.id)\n"
        "    return load(1) + load(2)\n"
        "etl()\n"
    )
    env = cli_env(sqlite_server.address, tmp_path)
    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.split()[-1]
    result = run_cli("flow-run", "watch", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    task_lines = [line for line in lines if " task " in line]
    # Each task run's states appear under its name, in order, beside the flow run's own.
    assert [line.split()[-1] for line in task_lines if "load-0" in line][-1] == "Completed"
    assert [line.split()[-1] for line in task_lines if "load-1" in line][-1] == "Completed"
    flow_lines = [line.split()[2] for line in lines[1:-1] if " task " not in line]
    assert flow_lines == ["Pending", "Running", "Completed"]
    assert lines[-1] == "Flow run finished: Completed"


def test_watch_follows_a_live_run_until_it_finishes(conn, sqlite_server, tmp_path: Path) -> None:
    run_id = make_run(conn, "cli-watch-live")
    watcher = subprocess.Popen(
        [*headwater_command(), "flow-run", "watch", run_id],
        env=cli_env(sqlite_server.address, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()  # the header: the watch is live
        assert run_id in first
        assert "Pending" in watcher.stdout.readline()
        for state_type in (RUNNING, COMPLETED):
            time.sleep(0.1)
            conn.set_flow_run_state(
                flow_runs_pb2.SetFlowRunStateRequest(
                    flow_run_id=run_id, state=states_pb2.State(type=state_type)
                )
            )
        rest, errors = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, errors
    lines = rest.splitlines()
    assert "Running" in lines[0]
    assert "Completed" in lines[1]
    assert lines[-1] == "Flow run finished: Completed"


@pytest.mark.parametrize("command", ["inspect", "watch", "logs", "cancel"])
def test_an_unknown_name_is_one_error_line(command: str, sqlite_server, tmp_path: Path) -> None:
    result = run_cli("flow-run", command, "nope", api_url=sqlite_server.address, home=tmp_path)
    assert_one_error_line(result, "No flow run has the id or name 'nope'", "flow-run ls")


@pytest.mark.parametrize("command", ["inspect", "watch", "logs", "cancel"])
def test_an_unknown_id_is_one_error_line(command: str, sqlite_server, tmp_path: Path) -> None:
    missing = str(uuid.uuid4())
    result = run_cli("flow-run", command, missing, api_url=sqlite_server.address, home=tmp_path)
    assert_one_error_line(result, missing, "flow-run ls")


def test_an_unreachable_server_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    result = run_cli("flow-run", "ls", api_url=address, home=tmp_path)
    assert_one_error_line(result, address, "headwater server start")


def test_a_bad_setting_is_one_error_line(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path)
    env["HEADWATER_LOGGING_LEVEL"] = "LOUD"
    result = subprocess.run(
        [*headwater_command(), "flow-run", "ls"], env=env, capture_output=True, text=True
    )
    assert_one_error_line(result, "HEADWATER_LOGGING_LEVEL")


def test_without_api_url_the_cli_reads_the_local_database(tmp_path: Path) -> None:
    """Runs made by an embedded-mode process show up in `flow-run ls` on the same home."""
    code = (
        "from headwater._transport.runtime import default_transport\n"
        "from headwater.v1 import flow_runs_pb2\n"
        "run = default_transport().connection.create_flow_run(\n"
        "    flow_runs_pb2.CreateFlowRunRequest(flow_name='local-flow')).flow_run\n"
        "print(run.id)\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env(None, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.strip()

    result = run_cli("flow-run", "ls", api_url=None, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert run_id in result.stdout
    assert "local-flow" in result.stdout


def test_server_start_serves_until_sigterm(tmp_path: Path) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [*headwater_command(), "server", "start", "--port", str(port)],
        env=cli_env(None, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "the server never became SERVING"
                time.sleep(0.1)
        assert (tmp_path / "headwater.db").exists()
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=20)
        assert server.returncode == 0, errors
        assert "Traceback" not in errors
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_cli("--help", api_url=None, home=tmp_path)
    assert result.returncode == 0
    assert "server" in result.stdout
    assert "flow-run" in result.stdout


def test_help_names_the_final_states_the_sdk_defines(tmp_path: Path) -> None:
    from headwater import FINAL_STATE_TYPES

    watch = run_cli("flow-run", "--help", api_url=None, home=tmp_path)
    logs = run_cli("flow-run", "logs", "--help", api_url=None, home=tmp_path)
    for result in (watch, logs):
        assert result.returncode == 0
        text = " ".join(result.stdout.split())  # argparse wraps at the terminal width
        assert all(state_type.value in text for state_type in FINAL_STATE_TYPES), text
    assert "until a final state (COMPLETED, FAILED, CANCELLED or CRASHED)" in " ".join(
        watch.stdout.split()
    )


def test_watch_resumes_after_a_server_restart_without_gaps_or_repeats(
    make_server, tmp_path: Path
) -> None:
    server = make_server()
    conn = connect(server.address, retry_timeout=30, keepalive_time_ms=20000)
    try:
        run_id = make_run(conn, "cli-watch-restart")
        watcher = subprocess.Popen(
            [*headwater_command(), "flow-run", "watch", run_id],
            env=cli_env(server.address, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None
            assert run_id in watcher.stdout.readline()
            assert "Pending" in watcher.stdout.readline()
            server.restart()
            for state_type in (RUNNING, COMPLETED):
                conn.set_flow_run_state(
                    flow_runs_pb2.SetFlowRunStateRequest(
                        flow_run_id=run_id, state=states_pb2.State(type=state_type)
                    )
                )
            rest, errors = watcher.communicate(timeout=60)
        finally:
            if watcher.poll() is None:
                watcher.kill()
        assert watcher.returncode == 0, errors
        lines = rest.splitlines()
        assert [line.split()[1:3] for line in lines[:-1]] == [
            ["#2", "Running"],
            ["#3", "Completed"],
        ]
        assert lines[-1] == "Flow run finished: Completed"
    finally:
        conn.close()


# ----------------------------------------------------------------- rough edges (issue 9)


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    import headwater

    result = run_cli("--version", api_url=None, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"headwater {headwater.__version__}"


@pytest.mark.parametrize("port", ["99999", "-5", "65536", "http"])
def test_server_start_refuses_a_port_outside_0_to_65535(port: str, tmp_path: Path) -> None:
    result = run_cli("server", "start", "--port", port, api_url=None, home=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("headwater server start: error: argument --port:")
    assert port in last
    assert not (tmp_path / "headwater.db").exists()  # it never got as far as the database


def test_server_start_help_says_what_port_0_means(tmp_path: Path) -> None:
    result = run_cli("server", "start", "--help", api_url=None, home=tmp_path)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "0 to 65535" in help_text
    assert "0 picks a free one" in help_text


def test_an_unknown_run_names_the_list_rpc_not_the_list_method(
    sqlite_server, tmp_path: Path
) -> None:
    missing = str(uuid.uuid4())
    result = run_cli("flow-run", "cancel", missing, api_url=sqlite_server.address, home=tmp_path)
    assert_one_error_line(result, missing)
    assert "List method" not in result.stderr


def test_cancelling_a_finished_run_names_its_state_once(
    conn, sqlite_server, tmp_path: Path
) -> None:
    run_id = make_run(conn, "cli-cancel-finished", RUNNING, FAILED)
    result = run_cli("flow-run", "cancel", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert_one_error_line(result, run_id, "already finished in state Failed;")
    assert "Failed (Failed)" not in result.stderr


def test_an_embedded_server_that_cannot_start_is_one_clean_sentence(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path)
    env["HEADWATER_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    result = subprocess.run(
        [*headwater_command(), "flow-run", "ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_error_line(result, "HEADWATER_DATABASE_URL")
    assert ".." not in result.stderr


# ------------------------------------------------- results, logs and names (issue 9, item 5)


# Log lines are listed by time: each line added by these tests gets a later millisecond than the
# one before, even across calls made within the same millisecond.
_last_log_millisecond = [0]


def _next_log_millisecond() -> int:
    _last_log_millisecond[0] = max(_last_log_millisecond[0] + 1, int(time.time() * 1000))
    return _last_log_millisecond[0]


def add_logs(
    conn: EngineConnection,
    run_id: str,
    *messages: str,
    level: int = 20,
    logger_name: str = "etl.load",
) -> None:
    request = logs_pb2.CreateLogsRequest()
    for message in messages:
        line = request.logs.add(
            flow_run_id=run_id, logger_name=logger_name, level=level, message=message
        )
        line.log_time.FromMilliseconds(_next_log_millisecond())
    conn.create_logs(request)


def complete_with_json(conn: EngineConnection, run_id: str, result_json: str) -> None:
    conn.set_flow_run_state(
        flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id,
            state=states_pb2.State(type=COMPLETED, result=states_pb2.StateResult(json=result_json)),
        )
    )


def test_inspect_shows_the_result_task_runs_and_logs(conn, sqlite_server, tmp_path: Path) -> None:
    run_id = make_run(conn, f"cli-result-{uuid.uuid4().hex[:6]}", RUNNING)
    task = conn.create_task_run(
        task_runs_pb2.CreateTaskRunRequest(flow_run_id=run_id, task_key="load", dynamic_key="0")
    ).task_run
    add_logs(conn, run_id, "loading rows", "loaded 5 rows")
    complete_with_json(conn, run_id, '{"rows": 5}')

    result = run_cli("flow-run", "inspect", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    result_row = next(line for line in out.splitlines() if line.startswith("Result"))
    assert result_row.split(None, 1)[1].strip() == '{"rows": 5}'
    assert task.id in "\n".join(section(out, "Task runs (1)"))
    logs = section(out, "Logs (2)")
    assert [" ".join(line.split()[2:]) for line in logs] == [
        "INFO | etl.load - loading rows",
        "INFO | etl.load - loaded 5 rows",
    ]


def test_inspect_says_where_a_persisted_result_is(sqlite_server, tmp_path: Path) -> None:
    flow = f"cli-persisted-{uuid.uuid4().hex[:6]}"
    code = (
        "from headwater import flow\n"
        f"@flow(name={flow!r}, persist_result=True)\n"
        "def make():\n"
        "    return list(range(3))\n"
        "make()\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env(sqlite_server.address, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    listed = run_cli("flow-run", "ls", "--flow", flow, api_url=sqlite_server.address, home=tmp_path)
    run_id = listed.stdout.splitlines()[1].split()[0]

    result = run_cli("flow-run", "inspect", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    result_row = next(line for line in result.stdout.splitlines() if line.startswith("Result"))
    stored = result_row.split("persisted to ", 1)[1].split()[0]
    assert Path(stored).is_file()
    assert Path(stored).is_relative_to(tmp_path)


def test_logs_prints_a_runs_lines_oldest_first(conn, sqlite_server, tmp_path: Path) -> None:
    run_id = make_run(conn, "cli-logs", RUNNING)
    add_logs(conn, run_id, "first", "second")
    add_logs(conn, run_id, "trouble", level=40)
    result = run_cli("flow-run", "logs", run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [" ".join(line.split()[2:]) for line in lines] == [
        "INFO | etl.load - first",
        "INFO | etl.load - second",
        "ERROR | etl.load - trouble",
    ]


def test_logs_follow_prints_new_lines_until_the_run_is_final(
    conn, sqlite_server, tmp_path: Path
) -> None:
    run_id = make_run(conn, "cli-logs-follow", RUNNING)
    add_logs(conn, run_id, "before")
    follower = subprocess.Popen(
        [*headwater_command(), "flow-run", "logs", "--follow", run_id],
        env=cli_env(sqlite_server.address, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().endswith("etl.load - before\n")
        add_logs(conn, run_id, "during")
        assert follower.stdout.readline().endswith("etl.load - during\n")
        add_logs(conn, run_id, "last words")
        make_state = flow_runs_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id, state=states_pb2.State(type=COMPLETED)
        )
        conn.set_flow_run_state(make_state)
        rest, errors = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, errors
    assert [line.split(" - ", 1)[1] for line in rest.splitlines()] == ["last words"]


@pytest.mark.parametrize("command", ["inspect", "logs", "watch"])
def test_the_flow_runs_own_lines_are_shown_under_its_name_as_the_engine_printed_them(
    command: str, conn, sqlite_server, tmp_path: Path
) -> None:
    """``get_run_logger()`` in a flow and its captured prints log under the flow run logger;
    the engine prints them as "Flow run 'name' - ...", and so do the commands that show
    stored lines. Lines of other loggers keep their logger's name."""
    name = f"shown-{uuid.uuid4().hex[:8]}"
    run_id = make_run(conn, "cli-log-source", RUNNING, name=name)
    add_logs(conn, run_id, "from the run logger", logger_name="headwater.flow_runs")
    add_logs(conn, run_id, "from a library")
    complete_with_json(conn, run_id, "1")

    result = run_cli("flow-run", command, run_id, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = [line.split("| ", 2)[-1] for line in result.stdout.splitlines() if " | " in line]
    assert shown == [
        f"Flow run '{name}' - from the run logger",
        "etl.load - from a library",
    ], result.stdout


@pytest.mark.parametrize("command", ["inspect", "logs", "watch", "cancel"])
def test_every_run_command_takes_a_run_name(
    command: str, conn, sqlite_server, tmp_path: Path
) -> None:
    name = f"named-{uuid.uuid4().hex[:8]}"
    final = () if command == "cancel" else (RUNNING, COMPLETED)
    run_id = make_run(conn, "cli-names", *final, name=name)
    add_logs(conn, run_id, f"line of {name}")
    result = run_cli("flow-run", command, name, api_url=sqlite_server.address, home=tmp_path)
    assert result.returncode == 0, result.stderr
    if command == "logs":
        assert f"line of {name}" in result.stdout
    else:
        assert run_id in result.stdout


def test_a_name_several_runs_share_lists_them(conn, sqlite_server, tmp_path: Path) -> None:
    name = f"twin-{uuid.uuid4().hex[:8]}"
    ids = [
        conn.create_flow_run(
            flow_runs_pb2.CreateFlowRunRequest(flow_name="cli-twins", name=name)
        ).flow_run.id
        for _ in range(2)
    ]
    result = run_cli("flow-run", "inspect", name, api_url=sqlite_server.address, home=tmp_path)
    assert_one_error_line(result, f"2 flow runs are named '{name}'", *ids)

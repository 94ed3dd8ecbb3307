"""`headwater server start` and `python -m headwater_server` behave the same way.

The fixtures start servers with the CLI (server_harness.server_command); these tests hold both
commands to the same promises: a server that cannot start says why in one line on stderr, with
no traceback, and exits 1; SIGTERM, even right after the server turned SERVING, stops it
cleanly with exit code 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import ServerFactory, server_command

pytestmark = pytest.mark.integration

COMMANDS = [
    pytest.param("cli", id="headwater-server-start"),
    pytest.param("module", id="python-m-headwater_server"),
]


def command(kind: str, port: int, *extra: str) -> list[str]:
    if kind == "cli":
        return [*server_command("127.0.0.1", port), *extra]
    return [sys.executable, "-m", "headwater_server", "--port", str(port), *extra]


def run_failing(kind: str, port: int, home: Path, *extra: str) -> str:
    """Run a server command that must fail to start; return its stderr."""
    result = subprocess.run(
        command(kind, port, *extra),
        env=dict(os.environ, HEADWATER_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert ".." not in lines[0] and "?." not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_busy_port_is_one_line_and_exit_1(kind: str, make_server: ServerFactory) -> None:
    server = make_server()
    line = run_failing(kind, server.port, server.home)
    assert f"Cannot listen on 127.0.0.1:{server.port}: the port is already in use" in line
    assert "another port" in line
    assert server.running


@pytest.mark.parametrize("kind", COMMANDS)
def test_an_unreachable_database_is_one_line_and_exit_1(kind: str, tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:1/nowhere"
    line = run_failing(kind, 0, tmp_path, "--database-url", url)
    assert "Cannot open the database postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere" in line
    assert "--database-url" in line
    # The driver's two lines read as two sentences, not "Connection refused Is the server...".
    assert "Connection refused. Is the server running" in line, line
    assert "secret" not in line and "sqlalche.me" not in line


def test_the_cli_passes_database_url_through(make_server: ServerFactory, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    server = make_server(database_url=url)
    assert f"database {url}" in server.output()
    assert (tmp_path / "elsewhere.db").exists()


def test_sigterm_right_after_serving_is_a_clean_stop(make_server: ServerFactory) -> None:
    server = make_server()
    assert server.stop() == 0
    output = server.output()
    assert "Headwater server stopped." in output and "Traceback" not in output


@pytest.mark.parametrize("kind", COMMANDS)
@pytest.mark.parametrize("host", ["999.1.1.1", "nosuch.invalid"])
def test_an_impossible_host_is_one_line_and_exit_1(kind: str, host: str, tmp_path: Path) -> None:
    # The last --host wins, so the CLI's default one from server_command is overridden.
    line = run_failing(kind, 4200, tmp_path, "--host", host)
    assert f"Cannot listen on {host}:4200: the host '{host}' is neither an IP address" in line
    assert "--host 127.0.0.1" in line
    assert "add_port.cc" not in line
    assert not (tmp_path / "headwater.db").exists()  # refused before opening the database


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_bad_server_setting_is_one_line_naming_the_variable(kind: str, tmp_path: Path) -> None:
    result = subprocess.run(
        command(kind, 0),
        env=dict(
            os.environ,
            HEADWATER_HOME=str(tmp_path),
            HEADWATER_REQUEST_LOG_RETENTION_SECONDS="a day",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "HEADWATER_REQUEST_LOG_RETENTION_SECONDS must be a number of seconds" in lines[0]
    assert "'a day'" in lines[0]

"""Service addresses a person gets wrong: refused at once, or failed fast, with a clear message.

Through the public API (a flow call in a fresh process, `Settings`) and real sockets: nothing
is mocked. The subprocess timeouts bound the old behaviour (61 s of silence) without timing
anything.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from headwater._settings import Settings
from headwater._transport.runtime import open_transport
from headwater.client import HeadwaterClient
from headwater.exceptions import SettingsError

FLOW_CALL = """
from headwater import flow

@flow
def job() -> int:
    return 1

job()
"""


def run_flow_process(home: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(HEADWATER_HOME=str(home), **env_vars)
    return subprocess.run(
        [sys.executable, "-c", FLOW_CALL], env=env, capture_output=True, text=True, timeout=30
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def unused_address() -> str:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.integration
def test_a_service_never_reached_fails_fast_naming_the_address(tmp_path: Path) -> None:
    address = unused_address()
    # The default retry timeout (60 s) is for riding out restarts of a service once reached;
    # the subprocess timeout (30 s) fails this test if a never-reached one waits that long.
    result = run_flow_process(tmp_path, HEADWATER_API_URL=address)
    assert result.returncode != 0
    line = last_line(result)
    assert line.startswith("headwater.exceptions.ServiceUnavailable: No Headwater service")
    assert address in line
    assert "HEADWATER_API_URL" in line


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:4200/api", "Headwater speaks gRPC at host:port"),
        ("garbage url", "is not an address; expected host:port"),
        ("127.0.0.1", "has no port; Headwater needs one, e.g. 127.0.0.1:4200"),
        ("127.0.0.1:99999", "a port is a number from 1 to 65535"),
        ("::1:4200", "put it in brackets: [::1]:4200"),
        ("ftp://host:21", "has a scheme Headwater does not speak"),
        ("unix:", "must name a socket"),
    ],
)
def test_an_address_that_cannot_work_is_refused_by_the_settings(value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(environ={"HEADWATER_API_URL": value})
    (problem,) = caught.value.problems
    assert problem.startswith("HEADWATER_API_URL ")
    assert expected in problem
    assert repr(value) in problem


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("headwater.internal:4200", "headwater.internal:4200"),
        ("[::1]:4200", "[::1]:4200"),
        ("https://10.0.0.1:4200", "10.0.0.1:4200"),
        ("unix:/run/headwater.sock", "unix:/run/headwater.sock"),
        ("unix-abstract:headwater", "unix-abstract:headwater"),
    ],
)
def test_the_accepted_address_forms(value: str, target: str) -> None:
    assert Settings(environ={"HEADWATER_API_URL": value}).api_url == target


@pytest.mark.integration
def test_a_flow_call_with_an_unusable_address_fails_at_once(tmp_path: Path) -> None:
    result = run_flow_process(tmp_path, HEADWATER_API_URL="http://127.0.0.1:4200/api")
    assert result.returncode != 0
    line = last_line(result)
    assert line.startswith("headwater.exceptions.SettingsError: Invalid Headwater settings: ")
    assert "HEADWATER_API_URL" in line and "host:port" in line


def test_a_transport_or_client_to_an_unusable_address_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("The service address '127.0.0.1' has no port")):
        open_transport("127.0.0.1")
    with pytest.raises(ValueError, match="Headwater speaks gRPC at host:port"):
        HeadwaterClient("http://127.0.0.1:4200/api")


@pytest.mark.integration
def test_a_home_that_is_a_file_is_a_settings_error(tmp_path: Path) -> None:
    home = tmp_path / "not-a-directory"
    home.write_text("")
    result = run_flow_process(home)
    assert result.returncode != 0
    line = last_line(result)
    assert line.startswith("headwater.exceptions.SettingsError: ")
    assert f"HEADWATER_HOME {str(home)!r} is a file, not a directory" in line
    assert "Traceback" in result.stderr and "PermissionError" not in result.stderr


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_a_home_that_is_not_writable_is_a_settings_error(tmp_path: Path) -> None:
    home = tmp_path / "read-only"
    home.mkdir(mode=0o500)
    result = run_flow_process(home)
    assert result.returncode != 0
    line = last_line(result)
    assert f"HEADWATER_HOME {str(home)!r} is not writable" in line


@pytest.mark.integration
def test_a_home_that_cannot_be_created_is_a_settings_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    home = blocker / "home"  # a directory inside a file: never creatable, even by root
    result = run_flow_process(home)
    line = last_line(result)
    assert line.startswith("headwater.exceptions.SettingsError: ")
    assert f"HEADWATER_HOME {str(home)!r} cannot be created" in line


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HEADWATER_DATABASE_URL", "not a url", "must be a SQLAlchemy URL"),
        ("HEADWATER_REQUEST_LOG_RETENTION_SECONDS", "a day", "must be a number of seconds"),
    ],
)
def test_a_bad_server_variable_fails_the_flow_call_as_a_settings_error(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    # The embedded server reads its own settings; its complaint reaches the flow caller as the
    # SDK's SettingsError naming the variable, not as a traceback from the server package.
    result = run_flow_process(tmp_path, **{name: value})
    assert result.returncode != 0
    line = last_line(result)
    assert line.startswith("headwater.exceptions.SettingsError: Invalid Headwater settings: ")
    assert f"{name} {expected}" in line and repr(value) in line
    assert "ServerSettingsError" not in result.stderr


@pytest.mark.integration
def test_the_embedded_server_honours_the_database_url(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere.db"
    result = run_flow_process(tmp_path / "home", HEADWATER_DATABASE_URL=f"sqlite:///{database}")
    assert result.returncode == 0, result.stderr
    assert database.is_file()
    assert not (tmp_path / "home" / "headwater.db").exists()

"""Real Headwater servers as subprocesses, for the fixtures in tests/conftest.py.

A plain module (not a conftest) so test modules can import ServerProcess and DATABASES: with
several conftest.py files, ``import conftest`` would pick whichever was imported first.
``server_command`` is the ONE place that says how a server is started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 15.0

# Parametrise a fixture or test with these to run it on both databases.
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def server_command(host: str, port: int) -> list[str]:
    """The command that starts a server: the ONE place to change it (e.g. to the CLI)."""
    return [sys.executable, "-m", "headwater_server", "--host", host, "--port", str(port)]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A Headwater server subprocess on 127.0.0.1 with its own home directory.

    Attributes:
        address: What clients dial, "127.0.0.1:<port>".
        home: The server's HEADWATER_HOME.
        database_url: The database it serves (the SQLite file in ``home`` unless one was given).
    """

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._explicit_url = database_url
        self.database_url = database_url or f"sqlite:///{home / 'headwater.db'}"
        self.log_path = home / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start the server and wait until it answers health checks with SERVING."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop("HEADWATER_API_URL", None)
        env["HEADWATER_HOME"] = str(self.home)
        env["PYTHONUNBUFFERED"] = "1"
        if self._explicit_url:
            env["HEADWATER_DATABASE_URL"] = self._explicit_url
        else:
            env.pop("HEADWATER_DATABASE_URL", None)
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                server_command("127.0.0.1", self.port),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        finally:
            log.close()
        self._wait_until_serving()
        return self

    def stop(self) -> int | None:
        """Stop with SIGTERM (a clean shutdown) and return the exit code."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"The server did not stop within {STOP_TIMEOUT_SECONDS} s of SIGTERM.\n"
                + self.output()
            ) from None

    def restart(self) -> ServerProcess:
        """Stop, then start again on the same port and database."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        """True while the subprocess is alive."""
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def channel(self) -> grpc.Channel:
        """A new (synchronous) channel to the server; close it when done."""
        return grpc.insecure_channel(self.address)

    def _wait_until_serving(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last_error = "no answer yet"
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise AssertionError(
                        f"The server exited with code {self._process.returncode} during start.\n"
                        + self.output()
                    )
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last_error = f"status {answer.status}"
                except grpc.RpcError as exc:
                    last_error = f"{exc.code().name}: {exc.details()}"
                time.sleep(0.05)
        self.stop()
        raise AssertionError(
            f"The server on {self.address} was not SERVING after {START_TIMEOUT_SECONDS} s "
            f"({last_error}).\n" + self.output()
        )


def database_url_for(kind: str, request: pytest.FixtureRequest) -> str | None:
    """Map a DATABASES parameter to a URL: None (the home's SQLite file) or PostgreSQL.

    The PostgreSQL database is only created when a PostgreSQL test actually runs.
    """
    if kind == "sqlite":
        return None
    if kind == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    raise ValueError(f"unknown database kind {kind!r}")


ServerFactory = Callable[..., ServerProcess]

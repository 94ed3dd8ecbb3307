"""Real Headwater servers as subprocesses, for the fixtures in tests/conftest.py.

A plain module (not a conftest) so test modules can import ServerProcess and DATABASES: with
several conftest.py files, ``import conftest`` would pick whichever was imported first.
``server_command`` is the ONE place that says how a server is started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

# scripts/ensure-postgres starts this server (trust auth, database `test`) before `make test`.
POSTGRES_PORT = int(os.environ.get("HEADWATER_TEST_POSTGRES_PORT", "54320"))
POSTGRES_ADMIN_URL = f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/test"
POSTGRES_SQLALCHEMY_BASE = f"postgresql+psycopg://postgres@127.0.0.1:{POSTGRES_PORT}"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 15.0

# Parametrise a fixture or test with these to run it on both databases.
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


# The real product command, `headwater server start`: the console script pip installed next to
# this interpreter, so the tests go through the same entry point, argument parsing and error
# handling users do. (`python -m headwater_server` calls the same `serve`; test_server_cli.py
# checks that it behaves the same.)
HEADWATER_CLI = Path(sys.executable).with_name("headwater")

# The health wait dials before the server listens, and gRPC's default reconnect backoff (1 s,
# growing 1.6x) would then leave a restart() idle for seconds after the server is up. (A
# refused connection fails at once, so the connect timeout, grpc.min_reconnect_backoff_ms,
# needs no change.)
FAST_RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
)


def server_command(host: str, port: int, database_url: str | None = None) -> list[str]:
    """The command that starts a server: the ONE place that says how."""
    if not HEADWATER_CLI.exists():
        raise AssertionError(
            f"{HEADWATER_CLI} is missing: install the project into this interpreter's "
            "environment (make install) so its `headwater` console script exists."
        )
    command = [str(HEADWATER_CLI), "server", "start", "--host", host, "--port", str(port)]
    if database_url:
        command += ["--database-url", database_url]
    return command


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

    def __init__(
        self, home: Path, database_url: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self._extra_env = dict(env or {})
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
        env.pop("HEADWATER_DATABASE_URL", None)
        env.update(self._extra_env)
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                server_command("127.0.0.1", self.port, self._explicit_url),
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
        with grpc.insecure_channel(self.address, options=FAST_RECONNECT_OPTIONS) as channel:
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


@contextlib.contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database on the local server; drop it (FORCE) on exit.

    The ONE implementation behind the ``postgres_url`` (per session, for servers) and
    ``postgres_database_url`` (per test, for storage tests) fixtures. Yields its SQLAlchemy URL.
    """
    import psycopg

    name = f"hw_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({' '.join(str(exc).split())}); "
            "run scripts/ensure-postgres, or deselect these tests with -m 'not postgres'."
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_SQLALCHEMY_BASE}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

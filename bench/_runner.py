"""Subprocess plumbing and statistics: everything the parent needs besides the table.

The parent never imports Headwater or Prefect. Each measurement runs in a child process of the
SDK's own interpreter with a clean environment and a throwaway home, so the two SDKs cannot see
each other's packages, settings or databases.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.workloads._common import HOME_VARS, RESULT_MARKER, peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = Path(__file__).resolve().parent / "workloads"
# Throwaway homes live on the project's disk, not in a tmpfs /tmp, so database writes cost
# what they cost in a real ~/.headwater or ~/.prefect.
SCRATCH = ROOT / ".bench" / "tmp"


class BenchError(Exception):
    """One measurement could not be taken; the message says what happened and what to do."""


@dataclass(frozen=True)
class Sdk:
    """One side of the comparison: which package to import, from which interpreter."""

    name: str
    label: str
    python: Path
    env: Mapping[str, str] = field(default_factory=dict)
    # Why this SDK cannot be measured (say, its virtualenv could not be built); empty when it can.
    unavailable: str = ""

    @property
    def home_var(self) -> str:
        return HOME_VARS[self.name]

    def environ(self, **overrides: str) -> dict[str, str]:
        """Returns this machine's environment without any HEADWATER_* or PREFECT_* setting a
        developer may have exported, plus this SDK's fixed settings and `overrides`.

        PYTHONDONTWRITEBYTECODE is dropped too: users run with bytecode caches, and without them
        every timed child would recompile the modules edited since the last cache write.
        """
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HEADWATER_", "PREFECT_")) and key != "PYTHONDONTWRITEBYTECODE"
        }
        return {**base, **self.env, **overrides}


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Returns n, mean, p50, p95, min and max of `samples`."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "min": ordered[0],
        "max": ordered[-1],
    }


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Returns the `pct` percentile of sorted samples, interpolating linearly between ranks
    (numpy's default), so p50 of an even count is the usual median."""
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@contextmanager
def throwaway_dir(prefix: str) -> Iterator[Path]:
    """Yields a new empty directory under .bench/tmp and removes it afterwards."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=SCRATCH))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def throwaway_postgres_database(server_url: str) -> Iterator[str]:
    """Creates an empty database on the PostgreSQL server at `server_url` (a libpq URL of a
    database to connect to, e.g. postgresql://postgres@127.0.0.1:54320/postgres), yields its
    SQLAlchemy URL, and drops it afterwards: each measurement starts from an empty service."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_workload(
    sdk: Sdk, workload: str, args: Sequence[str], env: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    """Runs bench/workloads/<workload>.py for `sdk` and returns the JSON result it printed.

    Raises:
        BenchError: the child failed, timed out or printed no result; the message carries the
            end of its stderr, where the SDK's own exception is.
    """
    cmd = [str(sdk.python), str(WORKLOADS / f"{workload}.py"), sdk.name, *args]
    SCRATCH.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            cmd, env=dict(env), cwd=SCRATCH, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise BenchError(f"no interpreter at {sdk.python}: run `make install` first") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"{workload} on {sdk.label} did not finish within {timeout:.0f} s and was stopped"
        ) from exc
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = "\n".join(proc.stderr.strip().splitlines()[-12:]) or "(no stderr)"
    raise BenchError(
        f"{workload} on {sdk.label} exited with {proc.returncode} and no result:\n{tail}"
    )


def free_port() -> int:
    """Returns a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    """A `headwater server start` subprocess that answers health checks."""

    address: str  # the value for HEADWATER_API_URL
    pid: int

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)


@contextmanager
def headwater_server(
    sdk: Sdk, home: Path, timeout: float = 60, database_url: str | None = None
) -> Iterator[RunningServer]:
    """Starts `headwater server start` on a free port with its own home (and `database_url`
    when given, else the home's SQLite), yields it once it answers health checks, and stops
    it afterwards."""
    port = free_port()
    cli = sdk.python.parent / "headwater"
    log_path = home / "server.log"
    cmd = [str(cli), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                env=sdk.environ(
                    HEADWATER_HOME=str(home),
                    **({"HEADWATER_DATABASE_URL": database_url} if database_url else {}),
                ),
                cwd=SCRATCH,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except FileNotFoundError as exc:
        raise BenchError(f"no `headwater` CLI at {cli}: run `make install` first") from exc
    try:
        _wait_until_serving(proc, port, log_path, timeout)
        yield RunningServer(f"127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_serving(
    proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float
) -> None:
    """Polls until the server accepts TCP and reports SERVING, or explains why it never did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-12:])
            raise BenchError(
                f"`headwater server start` exited with {proc.returncode} before serving:\n{tail}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.1)
            continue
        if _health_serving(f"127.0.0.1:{port}"):
            return
        time.sleep(0.1)
    tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-12:])
    raise BenchError(
        f"`headwater server start` on port {port} did not report SERVING within"
        f" {timeout:.0f} s; the end of its log:\n{tail or '(empty)'}"
    )


def _health_serving(target: str) -> bool:
    """Asks grpc.health.v1 whether the server is SERVING. With no grpc in this interpreter,
    the accepted TCP connection has to do."""
    try:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
    except ImportError:
        return True
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING

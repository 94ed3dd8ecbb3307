"""Helpers for tests that start real processes (a worker, a deploying script) against a real
server and wait for what they do: no mocks, no timed assertions (deadlines only give up)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from server_harness import ServerProcess

# Generous: the machine running the tests may be busy. Nothing here measures speed.
DEADLINE_SECONDS = 90.0


def start(cwd: Path, server: ServerProcess, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start ``args`` in ``cwd`` talking to ``server``, its output (both streams) captured."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, "HEADWATER_API_URL": server.address, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def until(
    condition: Callable[[], object],
    what: str,
    process: subprocess.Popen[str] | None = None,
    seconds: float = DEADLINE_SECONDS,
) -> None:
    """Wait for ``condition()``; fail with the process's output if it exits or ``seconds``
    run out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the process exited ({process.returncode}): {output}")
        time.sleep(0.1)
    output = ""
    if process is not None:
        process.kill()
        output = process.communicate()[0]
    raise AssertionError(f"gave up waiting for {what}; the process wrote: {output}")


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then the process's whole output (it must stop within the deadline)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=DEADLINE_SECONDS)
    return output


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity; its output."""
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    """Commit every file in ``repo``; the new commit's sha."""
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def kill(process: subprocess.Popen[str]) -> None:
    """Kill a process left running by a failed test."""
    if process.poll() is None:
        process.kill()
        process.communicate()


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")

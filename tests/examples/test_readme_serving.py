"""Every example of the README's "Serving flows and workers" section, run as written on the
embedded service (no HEADWATER_API_URL): ``python flows.py`` serves, the CLI triggers a run that
the serving process runs, a worker of a pool starts, ``python deploy.py`` deploys a flow to the
pool (printing the next steps), the worker runs it with its job variables, and both processes
stop on SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TITLE = "## Serving flows and workers"
DEADLINE_SECONDS = 120.0


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(TITLE, 1)[1].split("\n## ", 1)[0]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


def _commands() -> list[list[str]]:
    """The shell blocks' commands, without comments and without the optional ``[...]`` parts."""
    commands = []
    for line in "".join(_blocks("sh")).splitlines():
        line = re.sub(r"\[[^\]]*\]", "", line.split("  #", 1)[0]).strip()
        if line:
            commands.append(shlex.split(line))
    return commands


def _wait_for_line(process: subprocess.Popen[str], words: str) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if words in line:
            return line
    process.kill()
    raise AssertionError(f"{words!r} never printed; got: {''.join(seen)}")


@pytest.mark.integration
def test_the_readme_serving_examples_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path / "home")
    flows, deploying = _blocks("python")
    (tmp_path / "flows.py").write_text(flows)
    (tmp_path / "deploy.py").write_text(deploying)
    serve, run, create_pool, worker, deploy, run_deployed = _commands()
    assert serve == ["python", "flows.py"]
    assert deploy == ["python", "deploy.py"]
    headwater = str(Path(sys.executable).with_name("headwater"))

    def start(command: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    serving = start([sys.executable, "flows.py"])
    try:
        _wait_for_line(serving, "being served")
        ran = subprocess.run(
            [headwater, *run[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_SECONDS,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "COMPLETED" in ran.stdout.upper()
        made = subprocess.run(
            [headwater, *create_pool[1:]], env=env, capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        working = start([headwater, *worker[1:]])
        try:
            _wait_for_line(working, "polling work pool 'local'")
            deployed = subprocess.run(
                [sys.executable, *deploy[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=DEADLINE_SECONDS,
            )
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            assert "$ headwater worker start --pool 'local'" in deployed.stdout
            assert "$ headwater deployment run 'bye/nightly'" in deployed.stdout
            ran = subprocess.run(
                [headwater, *run_deployed[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=DEADLINE_SECONDS,
            )
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert "COMPLETED" in ran.stdout.upper()
            assert "good night world" in ran.stdout  # the deployment's job variables
            working.send_signal(signal.SIGTERM)
            output, _ = working.communicate(timeout=DEADLINE_SECONDS)
            assert working.returncode == 0, output
        finally:
            if working.poll() is None:
                working.kill()
        serving.send_signal(signal.SIGTERM)
        output, _ = serving.communicate(timeout=DEADLINE_SECONDS)
        assert serving.returncode == 0, output
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.communicate()

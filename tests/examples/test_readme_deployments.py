"""Every example of the README's "Deployments and work pools" section, run as written: the
Python block in a fresh process on the embedded service, then each shell command against the
same local database."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TITLE = "## Deployments and work pools"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(TITLE, 1)[1].split("\n## ", 1)[0]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


def _commands() -> list[list[str]]:
    """The shell block's commands, without comments and without the optional ``[...]`` parts."""
    (block,) = _blocks("sh")
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\[[^\]]*\]", "", line.split("  #", 1)[0]).strip()
        if line:
            commands.append(shlex.split(line))
    return commands


@pytest.mark.integration
def test_the_readme_deployment_examples_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path / "home")
    (python,) = _blocks("python")
    check = (
        "\nassert len(runs) == 100 and run.parameters == {'day': 'mon', 'limit': 5}\n"
        "print('README example ran')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", python + check],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "README example ran" in done.stdout

    commands = _commands()
    assert len(commands) == 6
    headwater = Path(sys.executable).with_name("headwater")
    for command in commands:
        assert command[0] == "headwater"
        if command[1:3] == ["work-pool", "create"]:
            command = [*command[:3], "second-pool", *command[4:]]  # "local" exists already
        result = subprocess.run(
            [str(headwater), *command[1:]], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr

"""`make demo` is the first thing a newcomer runs: it must work from a fresh home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_demo_streams_the_whole_state_history(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    watched = [line.split("] ", 1)[1] for line in done.stdout.splitlines() if "[watch]" in line]
    names = [entry.split(" ", 1)[1].split(" - ", 1)[0] for entry in watched]
    assert names == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    tasks = [line.split("] ", 1)[1] for line in done.stdout.splitlines() if "[task]" in line]
    finished = sorted(entry.split(maxsplit=1)[1] for entry in tasks if "Completed" in entry)
    assert finished == [f"double-{i}: Completed" for i in range(5)] + ["load-0: Completed"]
    assert "Task runs stored: 6, in states Completed" in done.stdout
    assert "Result: 20" in done.stdout
    assert "run_count 2" in done.stdout
    assert (tmp_path / "home" / "headwater.db").exists()

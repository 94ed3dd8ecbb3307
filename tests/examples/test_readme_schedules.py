"""The README's "Schedules" example, run as written in a fresh process on the embedded service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TITLE = "## Schedules"


@pytest.mark.integration
def test_the_readme_schedules_example_runs(tmp_path: Path) -> None:
    section = (ROOT / "README.md").read_text().split(TITLE, 1)[1].split("\n## ", 1)[0]
    (python,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", python], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "[\"cron '0 9 * * 1-5' (Europe/London)\", 'every 1 day, 0:00:00 (America/New_York)', "
        "\"rrule 'FREQ=MONTHLY;BYDAY=2FR;BYHOUR=9;BYMINUTE=0' (America/Chicago)\"]"
    )

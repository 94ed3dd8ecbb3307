"""Cold start: a process that imports headwater and runs one flow on the embedded server.

Its time is measured by the benchmarks, never asserted here; these tests pin down the causes
instead: which heavy modules such a process must not import (each costs tens of milliseconds),
on a new HEADWATER_HOME (the database is created) and on an existing one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported only when asked for: Alembic (migrations of older databases), the ORM (never used),
# OpenTelemetry (only with a configured tracer), pydantic-settings (not used) and pydantic (only
# to validate parameters, which this flow has none of).
MUST_NOT_IMPORT = ("alembic", "sqlalchemy.orm", "opentelemetry", "pydantic_settings", "pydantic")

SCRIPT = f"""
import json, sys
MUST_NOT_IMPORT = {MUST_NOT_IMPORT!r}
from headwater import flow

@flow
def trivial():
    return 1

result = trivial()
print(json.dumps({{
    "result": result,
    "imported": sorted(m for m in MUST_NOT_IMPORT if m in sys.modules),
    "server_started": "headwater_server.server" in sys.modules,
}}))
"""


def _run(home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "OTEL_"))}
    env["HEADWATER_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_cold_start_imports_only_what_it_needs(tmp_path: Path) -> None:
    fresh = _run(tmp_path)
    assert (tmp_path / "headwater.db").exists()
    warm = _run(tmp_path)
    for outcome in (fresh, warm):
        assert outcome["result"] == 1
        assert outcome["server_started"] is True
        assert outcome["imported"] == []

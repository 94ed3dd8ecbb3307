"""What every workload child shares: which SDK to import, and how to hand back a result."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

# The parent looks for the last stdout line that starts with this, so SDK output on stdout
# (log lines, banners) can never be mistaken for the result.
RESULT_MARKER = "BENCH_RESULT "

# Where each SDK keeps its database and settings; every measurement points it at a throwaway
# directory so no run sees another's state.
HOME_VARS = {"headwater": "HEADWATER_HOME", "prefect": "PREFECT_HOME"}


def sdk_from_argv() -> str:
    """Returns the SDK named by the first argument, exiting with usage text when it is wrong."""
    if len(sys.argv) < 2 or sys.argv[1] not in HOME_VARS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{'|'.join(HOME_VARS)}}} ...")
    return sys.argv[1]


def sdk_version(sdk: str) -> str:
    """Returns the installed distribution version, so results say exactly what was measured."""
    try:
        return importlib.metadata.version(sdk)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def emit(result: dict[str, Any]) -> None:
    """Prints the result line the parent parses."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def peak_rss_mib(pid: int) -> float:
    """Returns a live process's peak resident set (VmHWM) in MiB, or 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

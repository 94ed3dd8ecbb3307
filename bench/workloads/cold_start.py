"""Child: wall time of whole processes that import the SDK, define a trivial flow and run it.

Usage: python cold_start.py {headwater|prefect} RUNS SCRATCH_DIR

This is what a user waits for when running a script once. Each process is timed from spawn to
exit, on a warm home (database already created by an untimed first run) and on a fresh, empty
home per process (the first ever run on a machine, including creating the database).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _common import HOME_VARS, emit, sdk_from_argv, sdk_version

PROGRAM = "from {sdk} import flow\n\n@flow\ndef f():\n    return 1\n\nassert f() == 1\n"


def _time_one(sdk: str, home: Path) -> float:
    """Runs PROGRAM once with `home` as the SDK's home and returns its wall time in seconds."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, HOME_VARS[sdk]: str(home)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(sdk=sdk)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise SystemExit(f"the one-flow program exited with {proc.returncode}:\n{tail}")
    return elapsed


def main() -> None:
    sdk = sdk_from_argv()
    runs, scratch = int(sys.argv[2]), Path(sys.argv[3])
    warm_home = scratch / "warm"
    # Untimed: creates the warm home's database and loads the SDK's files into the OS cache,
    # so fresh-home runs below measure a new home, not a cold disk.
    first = _time_one(sdk, warm_home)
    warm = [_time_one(sdk, warm_home) for _ in range(runs)]
    fresh = [_time_one(sdk, scratch / f"fresh-{i}") for i in range(runs)]
    emit({"version": sdk_version(sdk), "first_s": first, "warm_s": warm, "fresh_s": fresh})


if __name__ == "__main__":
    main()

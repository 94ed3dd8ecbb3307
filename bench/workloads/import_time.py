"""Child: how long importing the SDK takes in a fresh interpreter.

Usage: python import_time.py {headwater|prefect} RUNS HOME_DIR

Reports three figures per run: `import <sdk>` alone, timed inside the new interpreter with
perf_counter; the whole process of that interpreter from spawn to exit (start-up and shutdown
included, closer to what a CLI user feels); and `from <sdk> import flow` in another fresh
interpreter. The last one matters because a package may load its names lazily, making the bare
import cheap and moving the cost to the first name a user touches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from _common import HOME_VARS, emit, sdk_from_argv, sdk_version

# A folder with no __init__.py imports as an empty namespace package in microseconds; the
# program refuses that, so a missing SDK fails instead of posting a flattering time.
PROGRAM = (
    "import time\n"
    "t = time.perf_counter()\n"
    "{statement}\n"
    "elapsed = time.perf_counter() - t\n"
    "import {sdk}\n"
    "if {sdk}.__file__ is None:\n"
    "    raise SystemExit('{sdk} is only a namespace package here: its __init__.py is missing')\n"
    "print(elapsed)\n"
)


def _time_one(sdk: str, statement: str, env: dict[str, str]) -> tuple[float, float]:
    """Returns (seconds for `statement`, whole-process seconds) for one fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(sdk=sdk, statement=statement)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise SystemExit(f"`{statement}` failed with exit code {proc.returncode}:\n{tail}")
    return float(proc.stdout.strip().splitlines()[-1]), elapsed


def main() -> None:
    sdk = sdk_from_argv()
    runs = int(sys.argv[2])
    env = {**os.environ, HOME_VARS[sdk]: sys.argv[3]}
    plain, with_flow = f"import {sdk}", f"from {sdk} import flow"
    _time_one(sdk, with_flow, env)  # untimed: writes any missing .pyc files, warms the OS cache
    samples = [_time_one(sdk, plain, env) for _ in range(runs)]
    flow_samples = [_time_one(sdk, with_flow, env) for _ in range(runs)]
    emit(
        {
            "version": sdk_version(sdk),
            "import_s": [imp for imp, _ in samples],
            "process_s": [proc for _, proc in samples],
            "flow_import_s": [imp for imp, _ in flow_samples],
        }
    )


if __name__ == "__main__":
    main()

"""Child: how long after ``kill -9`` of a flow process the service says its run CRASHED.

Usage: python crash_detection.py headwater {remote|embedded} RUNS

Each run starts a victim process whose flow runs a task that sleeps, waits until the task is
RUNNING, kills the victim with SIGKILL, then polls the service (every 50 ms, through the SDK's
public client) until the flow run is final. The figure is the time from the kill to the first
read that saw CRASHED, with the service's default settings.

- ``remote``: the victim reports to the server at ``HEADWATER_API_URL``, which sees its stream
  break (detection = the reconnect grace period).
- ``embedded``: the victim runs its own embedded server on ``HEADWATER_HOME``, which dies with
  it; the server at ``HEADWATER_API_URL`` serves the same SQLite file and notices that nobody
  refreshes the victim any more (detection = the engine timeout).

Prefect 3.9.1 has no equivalent by default (a killed flow run stays Running until something
else marks it), so this workload runs on Headwater only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from _common import emit, sdk_from_argv, sdk_version

VICTIM = """
import time
from headwater import flow, task
from headwater.runtime import flow_run

@task
def sleeper():
    print("RUNNING", flow_run.id, flush=True)
    time.sleep(600)

@flow
def victim():
    sleeper()

victim()
"""

POLL_SECONDS = 0.05
GIVE_UP_SECONDS = 120.0


def one_run(mode: str, client: object) -> float:
    env = dict(os.environ)
    if mode == "embedded":
        env.pop("HEADWATER_API_URL", None)
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM], env=env, stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout is not None
    line = victim.stdout.readline()
    if not line.startswith("RUNNING"):
        victim.kill()
        raise SystemExit(f"the victim flow did not start: {line!r}")
    flow_run_id = line.split()[1]
    killed = time.perf_counter()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stdout.close()
    while time.perf_counter() - killed < GIVE_UP_SECONDS:
        run = client.get_flow_run(flow_run_id)  # type: ignore[attr-defined]
        if run.state.is_final():
            if run.state.type.value != "CRASHED":
                raise SystemExit(f"the killed run ended {run.state.type.value}, not CRASHED")
            return time.perf_counter() - killed
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"the killed run was not CRASHED within {GIVE_UP_SECONDS} s")


def main() -> None:
    sdk = sdk_from_argv()
    mode, runs = sys.argv[2], int(sys.argv[3])
    from headwater.client import HeadwaterClient

    with HeadwaterClient(os.environ["HEADWATER_API_URL"]) as client:
        seconds = [one_run(mode, client) for _ in range(runs)]
    emit({"version": sdk_version(sdk), "mode": mode, "detected_s": seconds})


if __name__ == "__main__":
    main()

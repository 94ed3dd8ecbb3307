"""Child: how long after ``kill -9`` of a flow process the service says its run CRASHED.

Usage: python crash_detection.py headwater {remote|embedded|runner} RUNS

Each run starts a victim process whose flow runs a task that sleeps, waits until the task is
RUNNING, kills the victim with SIGKILL, then polls the service (every 50 ms, through the SDK's
public client) until the flow run is final. The figure is the time from the kill to the first
read that saw CRASHED, with the service's default settings.

- ``remote``: the victim reports to the server at ``HEADWATER_API_URL``, which sees its stream
  break (detection = the reconnect grace period).
- ``embedded``: the victim runs its own embedded server on ``HEADWATER_HOME``, which dies with
  it; the server at ``HEADWATER_API_URL`` serves the same SQLite file and notices that nobody
  refreshes the victim any more (detection = the engine timeout).
- ``runner``: the victim is a serving process (``Flow.serve``) running a run of its deployment
  in its subprocess; killing the serving process takes the subprocess with it (detection = the
  subprocess's death, then the reconnect grace period).

Prefect 3.9.1 has no equivalent by default (a killed flow run stays Running until something
else marks it), so this workload runs on Headwater only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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

SERVED = """
import sys, time
from headwater import flow

@flow
def victim():
    time.sleep(600)

if __name__ == "__main__":
    victim.serve(sys.argv[1])
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
    return _until_crashed(client, flow_run_id, killed)


def one_runner_run(client: object) -> float:
    """Serve a flow, start a run of it, kill -9 the serving process once the run is RUNNING."""
    with tempfile.TemporaryDirectory(prefix="headwater-crash-runner-") as directory:
        (Path(directory) / "served.py").write_text(SERVED)
        name = f"victim-{uuid.uuid4().hex[:8]}"
        runner = subprocess.Popen(
            [sys.executable, "served.py", name], cwd=directory, stdout=subprocess.PIPE, text=True
        )
        assert runner.stdout is not None
        line = runner.stdout.readline()
        while line and "being served" not in line:
            line = runner.stdout.readline()
        if not line:
            raise SystemExit("the serving process did not start")
        deployment = client.get_deployment(f"victim/{name}")  # type: ignore[attr-defined]
        run = client.create_flow_run_from_deployment(deployment.id)  # type: ignore[attr-defined]
        while client.get_flow_run(run.id).state.type.value != "RUNNING":  # type: ignore[attr-defined]
            time.sleep(POLL_SECONDS)
        killed = time.perf_counter()
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        runner.stdout.close()
        return _until_crashed(client, run.id, killed)


def _until_crashed(client: object, flow_run_id: str, killed: float) -> float:
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
        if mode == "runner":
            seconds = [one_runner_run(client) for _ in range(runs)]
        else:
            seconds = [one_run(mode, client) for _ in range(runs)]
    emit({"version": sdk_version(sdk), "mode": mode, "detected_s": seconds})


if __name__ == "__main__":
    main()

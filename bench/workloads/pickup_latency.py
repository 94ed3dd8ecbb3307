"""Child: how long a run created for a served deployment waits before it is RUNNING.

Usage: python pickup_latency.py headwater RUNS

Starts a process serving a trivial flow (``my_flow.serve(...)``) against the server at
``HEADWATER_API_URL``, waits until its deployment exists, then, one run at a time with the
serving process idle (for a second before each run), creates a run of the deployment and waits
for it to end. The figures come from the service's own state times, so the client's polling
adds nothing to them:

- ``claimed_s``: run created (SCHEDULED) -> PENDING, the long poll answering and claiming it;
- ``pickup_s``: run created -> RUNNING, which adds handing the claim to one of the serving
  process's spare subprocesses (SDK loaded, stream connected, the flow's file loaded ahead)
  and its RUNNING proposal.

Prefect 3.9.1's runner polls every 10 s by default (``PREFECT_RUNNER_POLL_FREQUENCY``), so its
pickup is up to 10 s plus its subprocess start; this workload runs on Headwater only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, sdk_from_argv, sdk_version

SERVED = """
from headwater import flow


@flow
def pickup() -> int:
    return 1


if __name__ == "__main__":
    pickup.serve("bench", print_starting_message=False)
"""

GIVE_UP_SECONDS = 120.0
POLL_SECONDS = 0.02
# The serving process is left idle this long before each run, as a served flow waits between
# its runs (and its spare process is ready by then).
IDLE_SECONDS = 1.0


def _wait(what: str, check: object) -> object:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        found = check()  # type: ignore[operator]
        if found:
            return found
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"gave up waiting for {what}")


def one_run(client: object, deployment_id: str) -> tuple[float, float]:
    time.sleep(IDLE_SECONDS)
    run = client.create_flow_run_from_deployment(deployment_id)  # type: ignore[attr-defined]

    def final() -> bool:
        state = client.get_flow_run(run.id).state  # type: ignore[attr-defined]
        return state is not None and state.is_final()

    _wait("the run to end", final)
    states = client.list_flow_run_states(run.id)  # type: ignore[attr-defined]
    times = {state.type.value: state.timestamp for state in states}
    if "RUNNING" not in times:
        raise SystemExit(f"the run never ran: {[state.type.value for state in states]}")
    created = times["SCHEDULED"]
    return (
        (times["PENDING"] - created).total_seconds(),
        (times["RUNNING"] - created).total_seconds(),
    )


def main() -> None:
    sdk = sdk_from_argv()
    runs = int(sys.argv[2])
    from headwater.client import HeadwaterClient
    from headwater.exceptions import ObjectNotFound

    with tempfile.TemporaryDirectory(prefix="pickup-") as directory:
        (Path(directory) / "served.py").write_text(SERVED)
        served = subprocess.Popen(
            [sys.executable, "served.py"],
            cwd=directory,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
        )
        try:
            with HeadwaterClient(os.environ["HEADWATER_API_URL"]) as client:

                def registered() -> str:
                    try:
                        return client.get_deployment("pickup/bench").id
                    except ObjectNotFound:
                        return ""

                deployment_id = str(_wait("the deployment", registered))
                one_run(client, deployment_id)  # warm-up: first imports, page cache
                samples = [one_run(client, deployment_id) for _ in range(runs)]
        finally:
            served.terminate()
            served.wait(timeout=60)
    emit(
        {
            "version": sdk_version(sdk),
            "claimed_s": [claimed for claimed, _ in samples],
            "pickup_s": [pickup for _, pickup in samples],
        }
    )


if __name__ == "__main__":
    main()

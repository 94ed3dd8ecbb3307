"""Child: a client's create -> cancel -> watch-to-the-end round trip, from Python and from Go.

Usage: python client_round_trip.py headwater RUNS

Against the server at ``HEADWATER_API_URL``: creates a deployment nobody serves, then times
RUNS round trips of the Python SDK's client (``HeadwaterClient``) and RUNS of the Go client
(``go_client/internal/roundtrip``, built here with ``go build``), each after one untimed warm-up.
A round trip creates a run of the deployment, cancels it and watches it until the stream ends:
three calls a service makes to start and follow a run, with the run ended by the cancel so no
worker's speed is in the figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, sdk_from_argv, sdk_version

GO_CLIENT = Path(__file__).resolve().parents[2] / "go_client"


def python_round_trips(client: object, deployment_id: str, runs: int) -> list[float]:
    seconds = []
    for i in range(runs + 1):
        start = time.perf_counter()
        run = client.create_flow_run_from_deployment(deployment_id)  # type: ignore[attr-defined]
        client.cancel_flow_run(run.id, "bench")  # type: ignore[attr-defined]
        for _ in client.watch_flow_run(run.id):  # type: ignore[attr-defined]
            pass
        if i:  # the first warms the connection up
            seconds.append(time.perf_counter() - start)
    return seconds


def go_round_trips(address: str, deployment_id: str, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as directory:
        binary = Path(directory) / "roundtrip"
        subprocess.run(
            ["go", "build", "-o", str(binary), "./internal/roundtrip"], cwd=GO_CLIENT, check=True
        )
        out = subprocess.run(
            [str(binary), "-address", address, "-deployment", deployment_id, "-runs", str(runs)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    seconds: list[float] = json.loads(out)["seconds"]
    return seconds


def main() -> None:
    sdk = sdk_from_argv()
    runs = int(sys.argv[2])
    address = os.environ["HEADWATER_API_URL"]
    from headwater.client import HeadwaterClient

    with HeadwaterClient(address) as client:
        deployment = client.create_deployment(flow_name="round-trip", name="bench")
        python_s = python_round_trips(client, deployment.id, runs)
    go_s = go_round_trips(address, deployment.id, runs)
    emit({"version": sdk_version(sdk), "python_s": python_s, "go_s": go_s})


if __name__ == "__main__":
    main()

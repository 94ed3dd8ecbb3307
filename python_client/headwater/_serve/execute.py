"""Run one flow run of a deployment in this process: ``python -m headwater._serve.execute ID``.

The runner starts this in the deployment's code directory with ``HEADWATER_API_URL`` set. The
flow is loaded from the deployment's entrypoint (`load_flow_from_flow_run`) and run as that
flow run on the ordinary engine, so the run keeps its id, its parameters and its history.
Exit status: 0 when the run completed, 1 when it ended otherwise, 2 when it could not start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    """Run the flow run named by ``argv[0]``; returns the process's exit status.

    With ``-`` instead of an id, this is a spare process: it loads the SDK and connects to the
    service first, then reads ``<flow run id>\t<code directory>`` from stdin (end of input: exit
    0), so a run handed to it skips the interpreter's and the SDK's start-up.
    """
    if len(argv) != 1:
        print("usage: python -m headwater._serve.execute {FLOW_RUN_ID | -}", file=sys.stderr)
        return 2
    from headwater._flows import run_flow
    from headwater._serve.loading import adopt_retry_policy, load_flow_for_run
    from headwater._transport.runtime import default_transport
    from headwater.client import get_client

    flow_run_id = argv[0]
    if flow_run_id == "-":
        default_transport()  # the engine's stream, open before the run arrives
        line = sys.stdin.readline()
        if not line.strip():
            return 0
        flow_run_id, _, directory = line.rstrip("\n").partition("\t")
        if directory:
            os.chdir(directory)
    with get_client(sync_client=True) as client:
        flow_run = client.get_flow_run(flow_run_id)
        flow = load_flow_for_run(client, flow_run)
        adopt_retry_policy(client, flow_run, flow)  # the flow's retries, for this run
    state = run_flow(flow, flow_run_id=flow_run_id, return_type="state")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

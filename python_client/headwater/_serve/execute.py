"""Run one flow run of a deployment in this process: ``python -m headwater._serve.execute ID``.

The runner starts this in the deployment's code directory with ``HEADWATER_API_URL`` set. The
flow is loaded from the deployment's entrypoint (`load_flow_for_run`) and run as that
flow run on the ordinary engine, so the run keeps its id, its parameters and its history.
Exit status: 0 when the run completed, 1 when it ended otherwise, 2 when it could not start.

Started with ``--runner-pid PID``, the process dies with its runner (see `die_with_runner`): a
runner killed with ``kill -9`` cannot stop its runs, and a run left going would hold its
concurrency slots with nobody to cancel it. Its engine stream then breaks, and the service's
crash detection ends the run CRASHED within its grace period, freeing the slots.

With ``--on-crashed ID`` it runs the ``on_crashed`` hooks of a run whose process died before
the run ended (the runner ended it CRASHED): the hooks cannot run in the dead process, so they
run here, on the flow loaded from the deployment's entrypoint again, as Prefect's runner does.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

#: How often the watchdog checks that the runner is still this process's parent.
PARENT_CHECK_SECONDS = 1.0
# prctl(2) option: the signal this process gets when the thread that forked it ends.
_PR_SET_PDEATHSIG = 1


def die_with_runner(runner_pid: int) -> None:
    """Be killed (SIGKILL) when the runner ``runner_pid`` dies, however it dies.

    On Linux the kernel sends the signal (``PR_SET_PDEATHSIG``) the moment the runner's thread
    that started this process ends, even while this process's code holds the GIL in a long C
    call. Since the runner may have died before that was set, and elsewhere there is no such
    option, a daemon thread also checks every `PARENT_CHECK_SECONDS` that this process's parent
    is still the runner (an orphan is re-parented to init or a subreaper).
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != runner_pid:
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != runner_pid:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="headwater-runner-watchdog", daemon=True).start()


def _parse(argv: Sequence[str]) -> argparse.Namespace | None:
    parser = argparse.ArgumentParser(
        prog="python -m headwater._serve.execute",
        description="Run one flow run of a deployment (started by a runner).",
    )
    parser.add_argument("--runner-pid", type=int, default=0, help="die when this process dies")
    parser.add_argument(
        "--on-crashed", action="store_true", help="only run the on_crashed hooks of the run"
    )
    parser.add_argument(
        "--preload",
        default="",
        metavar="ENTRYPOINT",
        help="with -, load this flow ahead of the run (see headwater._serve.spare)",
    )
    parser.add_argument("flow_run_id", help="the flow run, or - to read it from stdin")
    try:
        return parser.parse_args(list(argv))
    except SystemExit:
        return None


def main(argv: Sequence[str]) -> int:
    """Run the flow run named by the last argument; returns the process's exit status.

    With ``-`` instead of an id, this is a spare process: it does what it can before a run
    comes (`headwater._serve.spare`), then reads the claim of its run from stdin, a line
    written by `headwater._serve.spare.handoff_line` (end of input: exit 0).
    """
    arguments = _parse(argv)
    if arguments is None:
        return 2
    if arguments.runner_pid:
        die_with_runner(arguments.runner_pid)
    if arguments.on_crashed:
        return run_crashed_hooks(arguments.flow_run_id)
    if arguments.flow_run_id == "-":
        return _serve_as_spare(arguments.preload)
    from headwater._flows import run_flow
    from headwater._serve.loading import adopt_retry_policy, load_flow_for_run
    from headwater.client import get_client

    flow_run_id = arguments.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.get_flow_run(flow_run_id)
        flow = load_flow_for_run(client, flow_run)
    adopt_retry_policy(flow_run, flow)  # the flow's retries, for this run
    state = run_flow(flow, flow_run_id=flow_run_id, return_type="state")
    return 0 if state.is_completed() else 1


def _serve_as_spare(preload: str) -> int:
    from headwater._serve.spare import Preloaded, run_handed, warm_up

    warm_up()
    preloaded = Preloaded.load(preload) if preload else None
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    return run_handed(line, preloaded)


def run_crashed_hooks(flow_run_id: str) -> int:
    """Run the ``on_crashed`` hooks of a CRASHED flow run, on its flow loaded again.

    Returns 0 when they ran (a failing hook is logged on the run, as in the engine), 1 when the
    run is not CRASHED (it ended otherwise after all: its own process ran its hooks).
    """
    from headwater._engine.hooks import final_hooks_of, run_hooks
    from headwater._logging import run_logger
    from headwater._serve.loading import load_flow_for_run
    from headwater._states import StateType
    from headwater.client import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.get_flow_run(flow_run_id)
        if flow_run.state is None or flow_run.state.type is not StateType.CRASHED:
            return 1
        flow = load_flow_for_run(client, flow_run)
    hooks = final_hooks_of(flow, StateType.CRASHED)
    logger = run_logger(flow_run.id, flow_run.name, flow.name)
    run_hooks(flow, hooks, flow_run, flow_run.state, logger)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

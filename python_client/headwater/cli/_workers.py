"""``headwater worker start --pool NAME``: run the due runs of a work pool's deployments here."""

from __future__ import annotations

import argparse
from typing import Any

from headwater.cli._common import open_client, positive_int


def register(commands: Any) -> None:
    """Add the ``worker`` command group."""
    group = commands.add_parser("worker", help="run the flow runs of a work pool")
    actions = group.add_subparsers(title="worker commands", metavar="COMMAND", required=True)
    start = actions.add_parser(
        "start",
        help="take the pool's due runs and run each in a subprocess, until SIGTERM or Ctrl-C",
    )
    start.add_argument("--pool", "-p", required=True, metavar="NAME", help="the work pool")
    start.add_argument(
        "--work-queue",
        "-q",
        action="append",
        default=[],
        metavar="QUEUE",
        dest="queues",
        help="only this queue of the pool (repeat for several; default: all of them)",
    )
    start.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="the most runs at once in this worker (default: no limit)",
    )
    start.add_argument("--name", "-n", default="", help="the worker's name (default: generated)")
    start.set_defaults(handler=start_worker)


def start_worker(args: argparse.Namespace) -> int:
    """Check the pool exists, then run its due runs until SIGTERM or SIGINT."""
    from headwater._serve.runner import Runner

    with open_client() as client:
        pool = client.get_work_pool(args.pool)
        for queue in args.queues:
            known = {entry.name for entry in client.list_work_queues(pool.name)}
            if queue not in known:
                raise ValueError(
                    f"Work pool '{pool.name}' has no queue '{queue}'; its queues are "
                    f"{', '.join(sorted(known))}."
                )
    runner = Runner(
        name=args.name,
        limit=args.limit,
        work_pool_name=pool.name,
        work_queue_names=tuple(args.queues),
    )
    started = (
        f"Worker '{runner.name}' started, polling work pool '{pool.name}'"
        + (f" (queues {', '.join(args.queues)})" if args.queues else "")
        + (f" with a limit of {args.limit} runs" if args.limit else "")
        + "."
    )
    runner.run_forever(on_ready=lambda: print(started, flush=True))
    print(f"Worker '{runner.name}' stopped.", flush=True)
    return 0

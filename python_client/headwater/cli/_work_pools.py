"""``headwater work-pool ls | create``: the work pools deployments send their runs to."""

from __future__ import annotations

import argparse
import json
from typing import Any

from headwater.cli._common import CommandError, open_client, positive_int


def register(commands: Any) -> None:
    """Add the ``work-pool`` command group."""
    group = commands.add_parser("work-pool", help="list and create work pools")
    actions = group.add_subparsers(title="work-pool commands", metavar="COMMAND", required=True)

    ls = actions.add_parser("ls", help="list work pools, oldest first, with their queues")
    ls.set_defaults(handler=list_work_pools)

    create = actions.add_parser("create", help="create a work pool (with its 'default' queue)")
    create.add_argument("name", metavar="NAME", help="the pool's unique name")
    create.add_argument(
        "--type", default="process", help="the kind of worker that serves it (default: process)"
    )
    create.add_argument("--description", default="", help="what the pool is for")
    create.add_argument(
        "--concurrency-limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="the most runs of the pool that may run at once (default: no limit)",
    )
    create.add_argument(
        "--base-job-template",
        default="",
        metavar="JSON",
        help="default job settings (a JSON object) that deployments' job variables override",
    )
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.set_defaults(handler=create_work_pool)


def list_work_pools(args: argparse.Namespace) -> int:
    """Print a table of work pools, and each pool's queues."""
    from headwater.cli import _deployment_tables, _render

    with open_client() as client:
        pools = client.list_work_pools()
        queues = {pool.name: client.list_work_queues(pool.name) for pool in pools}
    out = _render.console()
    if not pools:
        out.print("No work pools found; create one with `headwater work-pool create NAME`.")
        return 0
    out.print(_deployment_tables.work_pools_table(pools))
    for pool in pools:
        out.print()
        out.print(f"[bold]Queues of {_render.escape(pool.name)}[/]")
        out.print(_deployment_tables.work_queues_table(queues[pool.name]))
    return 0


def create_work_pool(args: argparse.Namespace) -> int:
    """Create a work pool and print it."""
    from headwater.cli import _deployment_tables, _render

    template: dict[str, Any] | None = None
    if args.base_job_template:
        try:
            template = json.loads(args.base_job_template)
        except ValueError as exc:
            raise CommandError(f"--base-job-template is not valid JSON ({exc}).") from None
        if not isinstance(template, dict):
            raise CommandError("--base-job-template must be a JSON object.")
    with open_client() as client:
        pool = client.create_work_pool(
            args.name,
            type=args.type,
            description=args.description,
            paused=args.paused,
            concurrency_limit=args.concurrency_limit,
            base_job_template=template,
        )
    out = _render.console()
    out.print(f"Created work pool [bold]{_render.escape(pool.name)}[/] ({pool.id}).")
    out.print(_deployment_tables.work_pools_table([pool]))
    return 0

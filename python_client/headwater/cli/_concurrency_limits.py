"""``headwater concurrency-limit create | ls | inspect | delete | reset``: tag limits of task runs.

As Prefect's ``prefect concurrency-limit``: at most LIMIT task runs carrying TAG run at once;
the others wait in AwaitingConcurrencySlot until a slot frees.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from headwater.cli._common import open_client

if TYPE_CHECKING:
    from headwater._concurrency_records import ConcurrencyLimit
    from headwater.client import HeadwaterClient

#: How many slot holders `inspect` describes one by one (each is one read).
_HOLDERS_SHOWN = 50


def register(commands: Any) -> None:
    """Add the ``concurrency-limit`` command group."""
    group = commands.add_parser(
        "concurrency-limit", help="limit how many task runs with a tag run at once"
    )
    actions = group.add_subparsers(
        title="concurrency-limit commands", metavar="COMMAND", required=True
    )

    create = actions.add_parser(
        "create", help="set a tag's limit (created, or changed if the tag has one)"
    )
    create.add_argument("tag", metavar="TAG", help="the tag, as task runs carry it")
    create.add_argument(
        "limit", metavar="LIMIT", type=int, help="the most task runs with TAG running at once"
    )
    create.set_defaults(handler=create_limit)

    ls = actions.add_parser("ls", help="list the limits and how many slots each has taken")
    ls.set_defaults(handler=list_limits)

    for name, handler, text in (
        ("inspect", inspect_limit, "show one limit and the task runs holding its slots"),
        ("delete", delete_limit, "remove a tag's limit (its task runs then start freely)"),
        ("reset", reset_limit, "free every slot of a tag's limit (for stale slots)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("tag", metavar="TAG", help="the limited tag")
        action.set_defaults(handler=handler)


def limits_table(limits: list[ConcurrencyLimit]) -> Any:
    """One row per limit: what ``ls`` prints."""
    from rich.table import Table

    from headwater.cli._render import escape, timestamp

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TAG", no_wrap=True)
    table.add_column("LIMIT", justify="right", no_wrap=True)
    table.add_column("ACTIVE", justify="right", no_wrap=True)
    table.add_column("ID", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    for limit in limits:
        table.add_row(
            escape(limit.tag),
            str(limit.concurrency_limit),
            str(len(limit.active_slots)),
            limit.id,
            timestamp(limit.created),
        )
    return table


def holders_table(client: HeadwaterClient, limit: ConcurrencyLimit) -> Any:
    """The task runs holding the limit's slots, oldest first: the bottom of ``inspect``."""
    from rich.table import Table

    from headwater.cli._render import escape, state_label, timestamp
    from headwater.exceptions import ObjectNotFound

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TASK RUN", no_wrap=True)
    table.add_column("ID", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("STARTED", no_wrap=True)
    for run_id in limit.active_slots[:_HOLDERS_SHOWN]:
        try:
            run = client.get_task_run(run_id)
        except ObjectNotFound:
            table.add_row("- (deleted)", run_id, "-", "-")
            continue
        table.add_row(escape(run.name), run.id, state_label(run.state), timestamp(run.start_time))
    return table


def create_limit(args: argparse.Namespace) -> int:
    """Set a tag's limit and print it."""
    from headwater.cli._render import console, escape

    with open_client() as client:
        limit = client.create_concurrency_limit(args.tag, args.limit)
    out = console()
    out.print(
        f"Concurrency limit of tag [bold]{escape(limit.tag)}[/] set to "
        f"{limit.concurrency_limit} ({limit.id})."
    )
    out.print(limits_table([limit]))
    return 0


def list_limits(args: argparse.Namespace) -> int:
    """Print a table of the limits."""
    from headwater.cli._render import console

    with open_client() as client:
        limits = client.list_concurrency_limits()
    out = console()
    if not limits:
        out.print(
            "No concurrency limits found; set one with "
            "`headwater concurrency-limit create TAG LIMIT`."
        )
        return 0
    out.print(limits_table(limits))
    return 0


def inspect_limit(args: argparse.Namespace) -> int:
    """Print one limit and the task runs holding its slots."""
    from headwater.cli._render import console, escape

    with open_client() as client:
        limit = client.get_concurrency_limit(args.tag)
        out = console()
        out.print(limits_table([limit]))
        out.print()
        taken = len(limit.active_slots)
        out.print(
            f"[bold]{taken} of {limit.concurrency_limit} slots taken[/] (tag {escape(limit.tag)})"
        )
        if taken:
            out.print(holders_table(client, limit))
        if taken > _HOLDERS_SHOWN:
            out.print(f"... and {taken - _HOLDERS_SHOWN} more.")
    return 0


def delete_limit(args: argparse.Namespace) -> int:
    """Remove a tag's limit."""
    from headwater.cli._render import console, escape

    with open_client() as client:
        client.delete_concurrency_limit(args.tag)
    console().print(f"Deleted the concurrency limit of tag [bold]{escape(args.tag)}[/].")
    return 0


def reset_limit(args: argparse.Namespace) -> int:
    """Free every slot of a tag's limit."""
    from headwater.cli._render import console, escape

    with open_client() as client:
        limit = client.reset_concurrency_limit(args.tag)
    console().print(
        f"Freed every slot of the concurrency limit of tag [bold]{escape(limit.tag)}[/] "
        f"(limit {limit.concurrency_limit})."
    )
    return 0

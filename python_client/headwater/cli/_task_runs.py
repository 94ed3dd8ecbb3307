"""``headwater task-run ls | inspect | logs``: read task runs, inside flow runs or on their own.

Task runs are named per flow run ("extract-0"), so names repeat across runs: these commands take
a task run's id, as `headwater task-run ls` and `headwater flow-run inspect` show it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from headwater.cli._common import (
    CommandError,
    add_list_options,
    final_types_text,
    follow_logs,
    is_final,
    open_client,
)
from headwater.cli._flow_runs import find_run

if TYPE_CHECKING:
    from headwater._runs import Log, TaskRun
    from headwater.client import HeadwaterClient

_ID_HELP = "the task run's id, as `headwater task-run ls` shows it"


def register(commands: Any) -> None:
    """Add the ``task-run`` command group."""
    group = commands.add_parser("task-run", help="list and inspect task runs, print their logs")
    actions = group.add_subparsers(title="task-run commands", metavar="COMMAND", required=True)

    ls = actions.add_parser("ls", help="list task runs, newest first")
    ls.add_argument(
        "--flow-run",
        default="",
        metavar="ID_OR_NAME",
        help="only the task runs of this flow run (its id, or its name)",
    )
    add_list_options(ls, "task runs")
    ls.set_defaults(handler=list_task_runs)

    inspect = actions.add_parser(
        "inspect", help="show a task run's details, result, parameters, state history and logs"
    )
    inspect.add_argument("task_run", metavar="ID", help=_ID_HELP)
    inspect.set_defaults(handler=inspect_task_run)

    logs = actions.add_parser("logs", help="print a task run's log lines, oldest first")
    logs.add_argument("task_run", metavar="ID", help=_ID_HELP)
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help=f"keep printing new lines until the task run reaches a final state "
        f"({final_types_text()})",
    )
    logs.set_defaults(handler=print_task_run_logs)


def list_task_runs(args: argparse.Namespace) -> int:
    """Print a table of task runs, newest first."""
    from headwater.cli import _render
    from headwater.client import parse_state_type

    state_types = [parse_state_type(value) for value in args.state]
    with open_client() as client:
        flow_run_id = find_run(client, args.flow_run).id if args.flow_run else ""
        task_runs = client.list_task_runs(
            flow_run_id, args.limit, state_types=state_types, newest_first=True
        )
    out = _render.console()
    if not task_runs:
        out.print("No task runs found.")
        return 0
    out.print(_render.task_runs_table(task_runs, with_flow_run=not flow_run_id))
    return 0


def inspect_task_run(args: argparse.Namespace) -> int:
    """Print one task run, its result, its state history and its logs."""
    from headwater.cli import _render

    with open_client() as client:
        task_run = find_task_run(client, args.task_run)
        states = client.list_task_run_states(task_run.id)
        logs = client.list_logs(task_run_id=task_run.id)
    names = {task_run.id: task_run.name}
    out = _render.console()
    out.print(_render.task_run_details(task_run))
    out.print()
    out.print("[bold]State history[/]")
    out.print(_render.states_table(states))
    out.print()
    if logs:
        out.print(f"[bold]Logs ({len(logs)})[/]")
        for line in logs:
            out.print(_render.log_line(line, names))
    else:
        out.print("[bold]Logs[/]: none")
    return 0


def print_task_run_logs(args: argparse.Namespace) -> int:
    """Print a task run's log lines; with ``--follow``, keep going until it is final."""
    from headwater.cli import _render

    with open_client() as client:
        task_run = find_task_run(client, args.task_run)
        names = {task_run.id: task_run.name}

        def render(line: Log) -> str:
            return _render.log_line(line, names)

        follow_logs(
            lambda: client.list_logs(task_run_id=task_run.id),
            lambda: is_final(client.get_task_run(task_run.id).state),
            render,
            follow=args.follow,
        )
    return 0


def find_task_run(client: HeadwaterClient, reference: str) -> TaskRun:
    """The task run a person named by id.

    Raises:
        CommandError: The id is not a UUID, or no task run has it.
    """
    import uuid

    from headwater.exceptions import ObjectNotFound

    try:
        uuid.UUID(reference)
    except ValueError:
        raise CommandError(
            f"'{reference}' is not a task run id; pass the id (a UUID) that "
            "`headwater task-run ls` shows."
        ) from None
    try:
        return client.get_task_run(reference)
    except ObjectNotFound:
        raise CommandError(
            f"No task run has the id '{reference}'; `headwater task-run ls` lists recent task runs."
        ) from None

"""``headwater flow-run ls | inspect | logs | watch | cancel``: read and cancel flow runs.

Every command that takes a run accepts its id or its name; a name several runs share is an
error that lists them, so the person picks one id.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from headwater.cli._common import (
    CommandError,
    add_list_options,
    final_types_text,
    follow_logs,
    is_final,
    open_client,
)

if TYPE_CHECKING:
    from headwater._runs import FlowRun, Log
    from headwater._states import State
    from headwater.client import HeadwaterClient

#: How many runs sharing a name the error lists.
NAME_MATCHES_SHOWN = 10

_RUN_HELP = "the flow run's id, or its name"


def register(commands: Any) -> None:
    """Add the ``flow-run`` command group."""
    final = final_types_text()
    group = commands.add_parser("flow-run", help="list, inspect, watch and cancel flow runs")
    actions = group.add_subparsers(title="flow-run commands", metavar="COMMAND", required=True)

    ls = actions.add_parser("ls", help="list flow runs, newest first")
    ls.add_argument("--flow", default="", help="only runs of the flow with this name")
    add_list_options(ls, "runs")
    ls.set_defaults(handler=list_runs)

    inspect = actions.add_parser(
        "inspect", help="show a run's details, result, state history, task runs and logs"
    )
    inspect.add_argument("run", metavar="ID_OR_NAME", help=_RUN_HELP)
    inspect.set_defaults(handler=inspect_run)

    logs = actions.add_parser("logs", help="print a run's log lines, oldest first")
    logs.add_argument("run", metavar="ID_OR_NAME", help=_RUN_HELP)
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help=f"keep printing new lines until the run reaches a final state ({final})",
    )
    logs.set_defaults(handler=print_logs)

    watch = actions.add_parser(
        "watch",
        help=(
            f"print each state and log line of a run (and of its task runs) as it happens, "
            f"until a final state ({final}); exit 0 if it completes, 1 otherwise"
        ),
    )
    watch.add_argument("run", metavar="ID_OR_NAME", help=_RUN_HELP)
    watch.set_defaults(handler=watch_run)

    cancel = actions.add_parser(
        "cancel",
        help="cancel a run: at once if it is not running, else its engine stops it",
    )
    cancel.add_argument("run", metavar="ID_OR_NAME", help=_RUN_HELP)
    cancel.add_argument(
        "--reason", default="", help="why; shown in the run's Cancelling/Cancelled state"
    )
    cancel.set_defaults(handler=cancel_run)


def list_runs(args: argparse.Namespace) -> int:
    """Print a table of runs."""
    from headwater.cli import _render
    from headwater.client import parse_state_type

    state_types = [parse_state_type(value) for value in args.state]
    with open_client() as client:
        runs = client.list_flow_runs(flow_name=args.flow, state_types=state_types, limit=args.limit)
    out = _render.console()
    if not runs:
        out.print("No flow runs found.")
        return 0
    out.print(_render.flow_runs_table(runs))
    return 0


def inspect_run(args: argparse.Namespace) -> int:
    """Print one run, its result, its state history, its task runs and its logs."""
    from headwater.cli import _render

    with open_client() as client:
        run = find_run(client, args.run)
        events = client.list_flow_run_events(run.id)
        task_runs = client.list_task_runs(run.id)
        logs = client.list_logs(run.id)
    names = {task_run.id: task_run.name for task_run in task_runs}
    out = _render.console()
    out.print(_render.flow_run_details(run))
    out.print()
    out.print("[bold]State history[/]")
    out.print(_render.history_table(events))
    if task_runs:
        out.print()
        out.print(f"[bold]Task runs ({len(task_runs)})[/]")
        out.print(_render.task_runs_table(task_runs))
    out.print()
    if logs:
        out.print(f"[bold]Logs ({len(logs)})[/]")
        for line in logs:
            out.print(_render.log_line(line, names, run.name))
    else:
        out.print("[bold]Logs[/]: none")
    return 0


def print_logs(args: argparse.Namespace) -> int:
    """Print a run's log lines (its task runs' under their names); with ``--follow``, keep
    going until the run is final."""
    with open_client() as client:
        run = find_run(client, args.run)
        names: dict[str, str] = {}

        def render(line: Log) -> str:
            from headwater.cli import _render

            if line.task_run_id and line.task_run_id not in names:  # a task run started since
                names.update((t.id, t.name) for t in client.list_task_runs(run.id))
            return _render.log_line(line, names, run.name)

        follow_logs(
            lambda: client.list_logs(run.id),
            lambda: is_final(client.get_flow_run(run.id).state),
            render,
            follow=args.follow,
        )
    return 0


def watch_run(args: argparse.Namespace) -> int:
    """Stream a run's states until it finishes; resume after a server restart."""
    from headwater._runs import FlowRun
    from headwater._settings import get_settings
    from headwater.cli import _render
    from headwater.exceptions import ServiceUnavailable

    out = _render.console()
    retry_for = get_settings().client_retry_timeout_seconds
    last_sequence = 0
    final_state: State[Any] | None = None
    announced = False
    outage_since: float | None = None
    names: dict[str, str] = {}  # task run names, from their state events
    run_name: str | None = None  # for the flow run's own log lines
    with open_client(timeout=None) as client:
        run_id = find_run(client, args.run).id
        while True:
            try:
                for item in client.watch_flow_run(run_id, after_sequence=last_sequence):
                    outage_since = None
                    if isinstance(item, FlowRun):
                        final_state = item.state
                        run_name = item.name
                        if not announced:
                            out.print(
                                f"Watching flow run [bold]{_render.escape(item.name)}[/] "
                                f"({item.id}) of flow [bold]{_render.escape(item.flow_name)}[/]"
                            )
                            announced = True
                    else:
                        last_sequence = item.sequence
                        if item.state is not None:
                            final_state = item.state
                        if item.task_run_id:
                            names[item.task_run_id] = item.task_run_name
                        if item.state is not None or item.task_run_state is not None:
                            out.print(_render.watch_line(item))
                        elif item.log is not None:
                            out.print(_render.log_line(item.log, names, run_name))
                break  # the server ends the watch after a final state
            except ServiceUnavailable:
                if not announced:
                    raise  # never reached the server: say so now rather than in a minute
                # The server is restarting: resume after the last event seen, without gaps.
                now = time.monotonic()
                outage_since = outage_since or now
                if now - outage_since > retry_for:
                    raise
                time.sleep(0.5)
    if final_state is None or not final_state.is_final():
        print("Error: the watch ended before the run finished.", file=sys.stderr)
        return 1
    out.print(f"Flow run finished: {_render.state_label(final_state)}")
    return 0 if final_state.is_completed() else 1


def cancel_run(args: argparse.Namespace) -> int:
    """Ask the service to cancel a run and print the state it is in now.

    A running run moves to CANCELLING; its engine notices, stops the code and reports
    CANCELLED. A finished run cannot be cancelled: the service answers FAILED_PRECONDITION,
    which `headwater.cli.main` prints as one error line (exit 2).
    """
    from headwater.cli import _render

    with open_client() as client:
        run = client.cancel_flow_run(find_run(client, args.run).id, reason=args.reason)
    out = _render.console()
    out.print(
        f"Flow run [bold]{_render.escape(run.name)}[/] ({run.id}): {_render.state_label(run.state)}"
    )
    if run.state is not None and run.state.message:
        out.print(f"  {_render.escape(run.state.message)}")
    return 0


def find_run(client: HeadwaterClient, reference: str) -> FlowRun:
    """The run a person named on the command line: by id (a UUID), else by name.

    Raises:
        CommandError: No run has that id or name, or several runs share the name.
    """
    import uuid

    from headwater.exceptions import ObjectNotFound

    try:
        uuid.UUID(reference)
    except ValueError:
        pass
    else:
        try:
            return client.get_flow_run(reference)
        except ObjectNotFound:
            raise CommandError(
                f"No flow run has the id '{reference}'; `headwater flow-run ls` lists recent runs."
            ) from None
    matches = client.list_flow_runs(name=reference, limit=NAME_MATCHES_SHOWN + 1)
    if not matches:
        raise CommandError(
            f"No flow run has the id or name '{reference}'; pass a run's id (a UUID) or its "
            "name, as `headwater flow-run ls` shows them."
        )
    if len(matches) > 1:
        shown = "; ".join(
            f"{run.id} (flow {run.flow_name}, {_state_text(run)})"
            for run in matches[:NAME_MATCHES_SHOWN]
        )
        count = str(len(matches))
        if len(matches) > NAME_MATCHES_SHOWN:
            count, shown = f"More than {NAME_MATCHES_SHOWN}", shown + ", ..."
        raise CommandError(
            f"{count} flow runs are named '{reference}'; pass one of their ids: {shown}."
        )
    return matches[0]


def _state_text(run: FlowRun) -> str:
    from headwater.cli import _render

    return _render.state_label(run.state, markup=False)

"""``headwater flow-run ls | inspect | watch | cancel``: read and cancel flow runs."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.client import HeadwaterClient


def register(commands: Any) -> None:
    """Add the ``flow-run`` command group."""
    group = commands.add_parser("flow-run", help="list, inspect, watch and cancel flow runs")
    actions = group.add_subparsers(title="flow-run commands", metavar="COMMAND", required=True)

    ls = actions.add_parser("ls", help="list flow runs, newest first")
    ls.add_argument("--flow", default="", help="only runs of the flow with this name")
    ls.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="TYPE",
        help="only runs in this state type (COMPLETED, FAILED, RUNNING, ...); repeatable",
    )
    ls.add_argument("--limit", type=_positive_int, default=20, help="how many runs (default 20)")
    ls.set_defaults(handler=list_runs)

    inspect = actions.add_parser("inspect", help="show a run's details and state history")
    inspect.add_argument("id", help="the flow run's id")
    inspect.set_defaults(handler=inspect_run)

    watch = actions.add_parser(
        "watch",
        help="print each state of a run as it happens; exit 0 if it completes, 1 otherwise",
    )
    watch.add_argument("id", help="the flow run's id")
    watch.set_defaults(handler=watch_run)

    cancel = actions.add_parser(
        "cancel",
        help="cancel a run: at once if it is not running, else its engine stops it",
    )
    cancel.add_argument("id", help="the flow run's id")
    cancel.add_argument(
        "--reason", default="", help="why; shown in the run's Cancelling/Cancelled state"
    )
    cancel.set_defaults(handler=cancel_run)


def list_runs(args: argparse.Namespace) -> int:
    """Print a table of runs."""
    from headwater.cli import _render
    from headwater.client import parse_state_type

    state_types = [parse_state_type(value) for value in args.state]
    with _client() as client:
        runs = client.list_flow_runs(flow_name=args.flow, state_types=state_types, limit=args.limit)
    out = _render.console()
    if not runs:
        out.print("No flow runs found.")
        return 0
    out.print(_render.flow_runs_table(runs))
    return 0


def inspect_run(args: argparse.Namespace) -> int:
    """Print one run, its state history and its task runs."""
    from headwater.cli import _render

    with _client() as client:
        run = client.get_flow_run(args.id)
        events = client.list_flow_run_events(run.id)
        task_runs = client.list_task_runs(run.id)
    out = _render.console()
    out.print(_render.flow_run_details(run))
    out.print()
    out.print("[bold]State history[/]")
    out.print(_render.history_table(events))
    if task_runs:
        out.print()
        out.print(f"[bold]Task runs ({len(task_runs)})[/]")
        out.print(_render.task_runs_table(task_runs))
    return 0


def watch_run(args: argparse.Namespace) -> int:
    """Stream a run's states until it finishes; resume after a server restart."""
    from headwater._settings import get_settings
    from headwater.cli import _render
    from headwater.exceptions import ServiceUnavailable

    out = _render.console()
    retry_for = get_settings().client_retry_timeout_seconds
    last_sequence = 0
    final_state = None
    announced = False
    outage_since: float | None = None
    with _client(timeout=None) as client:
        while True:
            try:
                for message in client.watch_flow_run(args.id, after_sequence=last_sequence):
                    outage_since = None
                    kind = message.WhichOneof("kind")
                    if kind == "snapshot":
                        run = message.snapshot
                        final_state = run.state
                        if not announced:
                            out.print(
                                f"Watching flow run [bold]{_render.escape(run.name)}[/] "
                                f"({run.id}) of flow [bold]{_render.escape(run.flow_name)}[/]"
                            )
                            announced = True
                    elif kind == "event" and message.event.HasField("state_changed"):
                        last_sequence = message.event.sequence
                        final_state = message.event.state_changed
                        out.print(_render.watch_line(message.event))
                break  # the server ends the watch after a terminal state
            except ServiceUnavailable:
                if not announced:
                    raise  # never reached the server: say so now rather than in a minute
                # The server is restarting: resume after the last event seen, without gaps.
                now = time.monotonic()
                outage_since = outage_since or now
                if now - outage_since > retry_for:
                    raise
                time.sleep(0.5)
    if final_state is None or final_state.type not in _render.TERMINAL_TYPES:
        print("Error: the watch ended before the run finished.", file=sys.stderr)
        return 1
    label = _render.state_label(final_state)
    out.print(f"Flow run finished: {label}")
    return 0 if final_state.type == _state_completed() else 1


def cancel_run(args: argparse.Namespace) -> int:
    """Ask the service to cancel a run and print the state it is in now.

    A running run moves to CANCELLING; its engine notices, stops the code and reports
    CANCELLED. A finished run cannot be cancelled: the service answers FAILED_PRECONDITION,
    which `headwater.cli.main` prints as one error line (exit 2).
    """
    from headwater.cli import _render

    with _client() as client:
        run = client.cancel_flow_run(args.id, reason=args.reason)
    out = _render.console()
    label = _render.state_label(run.state)
    out.print(f"Flow run [bold]{_render.escape(run.name)}[/] ({run.id}): {label}")
    if run.state.message:
        out.print(f"  {_render.escape(run.state.message)}")
    return 0


def _state_completed() -> int:
    from headwater.v1 import states_pb2

    return states_pb2.STATE_TYPE_COMPLETED


def _client(timeout: float | None = 30.0) -> HeadwaterClient:
    from headwater.client import HeadwaterClient

    return HeadwaterClient(timeout=timeout)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value

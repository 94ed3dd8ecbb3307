"""How the CLI shows runs and states: rich tables for people, one line per state for watches.

Rich is imported here, lazily, so commands that print nothing do not pay for it.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import TYPE_CHECKING, Any

from headwater.v1 import states_pb2

if TYPE_CHECKING:
    from google.protobuf import duration_pb2, timestamp_pb2
    from rich.console import Console

    from headwater.v1 import flow_runs_pb2

_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "bold red",
    "CANCELLED": "magenta",
    "CANCELLING": "magenta",
    "RUNNING": "cyan",
    "PENDING": "yellow",
    "SCHEDULED": "yellow",
    "PAUSED": "blue",
}

TERMINAL_TYPES = frozenset(
    {
        states_pb2.STATE_TYPE_COMPLETED,
        states_pb2.STATE_TYPE_FAILED,
        states_pb2.STATE_TYPE_CANCELLED,
        states_pb2.STATE_TYPE_CRASHED,
    }
)


def console() -> Console:
    """A console on stdout; piped output is not wrapped at 80 columns, so rows stay whole."""
    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = 200
    return Console(width=width, highlight=False, soft_wrap=False)


def type_name(state_type: int) -> str:
    """The type without its prefix: "COMPLETED" for STATE_TYPE_COMPLETED."""
    name: str = states_pb2.StateType.Name(state_type)
    return name.removeprefix("STATE_TYPE_")


def state_label(state: states_pb2.State, *, markup: bool = True) -> str:
    """The state as people read it: its name, and its type when the name differs ("Late")."""
    kind = type_name(state.type)
    name = state.name or kind.title()
    text = name if name.upper() == kind else f"{name} ({kind})"
    if not markup:
        return text
    style = _STYLES.get(kind, "")
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def timestamp(ts: timestamp_pb2.Timestamp, holder: Any = None, field: str = "") -> str:
    """A local, second-precision time, or "-" when the field is unset."""
    if holder is not None and field and not holder.HasField(field):
        return "-"
    if not ts.seconds and not ts.nanos:
        return "-"
    local: dt.datetime = ts.ToDatetime(tzinfo=dt.UTC).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S")


def precise_time(ts: timestamp_pb2.Timestamp) -> str:
    """A local time with milliseconds, for watch lines a few ms apart."""
    if not ts.seconds and not ts.nanos:
        return "-"
    local: dt.datetime = ts.ToDatetime(tzinfo=dt.UTC).astimezone()
    return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def duration(value: duration_pb2.Duration) -> str:
    """A short duration for tables: "1.234s", "2m03s", "1h02m"."""
    seconds = value.seconds + value.nanos / 1e9
    if seconds < 60:
        return f"{seconds:.3f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def flow_runs_table(runs: list[flow_runs_pb2.FlowRun]) -> Any:
    """One row per run: what `headwater flow-run ls` prints."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", no_wrap=True)
    table.add_column("FLOW", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("RUNS", justify="right")
    table.add_column("CREATED", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.id,
            escape(run.name),
            escape(run.flow_name),
            state_label(run.state),
            str(run.run_count),
            timestamp(run.create_time),
            duration(run.total_run_time) if run.HasField("total_run_time") else "-",
        )
    return table


def flow_run_details(run: flow_runs_pb2.FlowRun) -> Any:
    """A two-column sheet of one run's fields: the top of `headwater flow-run inspect`."""
    from rich.table import Table

    sheet = Table.grid(padding=(0, 2))
    sheet.add_column(style="bold", no_wrap=True)
    sheet.add_column()
    rows = [
        ("ID", run.id),
        ("Name", escape(run.name)),
        ("Flow", f"{escape(run.flow_name)} ({run.flow_id})"),
        ("State", state_label(run.state)),
        ("Message", escape(run.state.message) or "-"),
        ("Run count", str(run.run_count)),
        ("Parameters", escape(run.parameters_json or "{}")),
        ("Tags", escape(", ".join(run.tags)) or "-"),
        ("Created", timestamp(run.create_time)),
        ("Started", timestamp(run.start_time, run, "start_time")),
        ("Ended", timestamp(run.end_time, run, "end_time")),
        ("Run time", duration(run.total_run_time)),
    ]
    if run.parent_flow_run_id:
        rows.append(("Parent run", run.parent_flow_run_id))
    if run.idempotency_key:
        rows.append(("Idempotency key", escape(run.idempotency_key)))
    if run.policy.retries:
        rows.append(("Retries", f"{run.policy.retries} (delay {duration(run.policy.retry_delay)})"))
    if run.state.HasField("failure") and run.state.failure.exception_type:
        failure = run.state.failure
        rows.append(("Failure", escape(f"{failure.exception_type}: {failure.message}")))
    for label, value in rows:
        sheet.add_row(label, value)
    return sheet


def history_table(events: list[flow_runs_pb2.FlowRunEvent]) -> Any:
    """One row per state the run went through, oldest first."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("TIME", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("MESSAGE")
    for event in events:
        if not event.HasField("state_changed"):
            continue
        state = event.state_changed
        table.add_row(
            str(event.sequence),
            precise_time(event.event_time),
            state_label(state),
            escape(state.message),
        )
    return table


def task_runs_table(task_runs: list[Any]) -> Any:
    """One row per task run of a flow run."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TASK RUN", no_wrap=True)
    table.add_column("ID", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("RUNS", justify="right")
    table.add_column("DURATION", justify="right")
    for task_run in task_runs:
        table.add_row(
            escape(task_run.name),
            task_run.id,
            state_label(task_run.state),
            str(task_run.run_count),
            duration(task_run.total_run_time),
        )
    return table


def watch_line(event: flow_runs_pb2.FlowRunEvent) -> str:
    """One line per state change: time, sequence, state, message."""
    state = event.state_changed
    line = f"{precise_time(event.event_time)}  #{event.sequence:<3} {state_label(state)}"
    if state.message:
        line += f"  {escape(state.message)}"
    return line


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

"""How the CLI shows runs and states: rich tables for people, one line per state or log line.

Everything here takes the SDK's records (`FlowRun`, `State`, `TaskRun`, `Log`), the same ones
`headwater.client` returns. Rich is imported lazily, so commands that print nothing do not pay
for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from headwater._runs import FlowRun, FlowRunEvent, Log, TaskRun
    from headwater._states import State

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

_LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}

#: A result longer than this is cut in `flow-run inspect`: the sheet is for people.
RESULT_PREVIEW_CHARS = 2000


def console() -> Console:
    """A console on stdout; piped output is not wrapped at 80 columns, so rows stay whole."""
    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = 200
    return Console(width=width, highlight=False, soft_wrap=False)


def state_label(state: State[Any] | None, *, markup: bool = True) -> str:
    """The state as people read it: its name, and its type only when the name differs
    ("Late (SCHEDULED)", but "Failed", never "Failed (FAILED)")."""
    if state is None:
        return "-"
    kind = state.type.value
    name = state.name or kind.title()
    text = name if name.upper() == kind else f"{name} ({kind})"
    if not markup:
        return text
    style = _STYLES.get(kind, "")
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def timestamp(moment: dt.datetime | None) -> str:
    """A local, second-precision time, or "-" when there is none."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def precise_time(moment: dt.datetime | None) -> str:
    """A local time with milliseconds, for lines a few ms apart."""
    if moment is None:
        return "-"
    local = moment.astimezone()
    return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def duration(value: dt.timedelta | float) -> str:
    """A short duration for tables: "1.234s", "2m03s", "1h02m"."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if seconds < 60:
        return f"{seconds:.3f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def flow_runs_table(runs: list[FlowRun]) -> Any:
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
            timestamp(run.created),
            duration(run.total_run_time) if run.total_run_time else "-",
        )
    return table


def flow_run_details(run: FlowRun) -> Any:
    """A two-column sheet of one run's fields: the top of `headwater flow-run inspect`."""
    from rich.table import Table

    sheet = Table.grid(padding=(0, 2))
    sheet.add_column(style="bold", no_wrap=True)
    sheet.add_column()
    state = run.state
    rows = [
        ("ID", run.id),
        ("Name", escape(run.name)),
        ("Flow", f"{escape(run.flow_name)} ({run.flow_id})"),
        ("State", state_label(state)),
        ("Message", escape(state.message) if state and state.message else "-"),
        ("Run count", str(run.run_count)),
        ("Parameters", escape(json.dumps(run.parameters))),
        ("Tags", escape(", ".join(run.tags)) or "-"),
        ("Created", timestamp(run.created)),
        ("Started", timestamp(run.start_time)),
        ("Ended", timestamp(run.end_time)),
        ("Run time", duration(run.total_run_time)),
    ]
    if run.parent_flow_run_id:
        rows.append(("Parent run", run.parent_flow_run_id))
    if run.idempotency_key:
        rows.append(("Idempotency key", escape(run.idempotency_key)))
    if run.retries:
        rows.append(("Retries", f"{run.retries} (delay {duration(run.retry_delay_seconds)})"))
    if run.failure is not None:
        rows.append(("Failure", escape(f"{run.failure.exception_type}: {run.failure.message}")))
    if state is not None and state.is_completed():
        rows.append(("Result", escape(result_text(state))))
    for label, value in rows:
        sheet.add_row(label, value or "-")
    return sheet


def result_text(state: State[Any]) -> str:
    """A completed state's result for people: the value, or where it was persisted."""
    from headwater._results import ResultReference

    data = state.data
    if isinstance(data, ResultReference):
        return f"persisted to {data.storage_key} ({data.serializer})"
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):
        text = repr(data)
    if len(text) > RESULT_PREVIEW_CHARS:
        text = text[:RESULT_PREVIEW_CHARS] + f"... ({len(text)} characters in all)"
    return text


def history_table(events: list[FlowRunEvent]) -> Any:
    """One row per state the run went through, oldest first."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("TIME", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("MESSAGE")
    for event in events:
        if event.state is None:
            continue
        table.add_row(
            str(event.sequence),
            precise_time(event.time),
            state_label(event.state),
            escape(event.state.message or ""),
        )
    return table


def task_runs_table(task_runs: list[TaskRun]) -> Any:
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


def log_line(log: Log) -> str:
    """One stored log line as the engine printed it: time, level, logger, message."""
    level = log.level_name
    style = _LEVEL_STYLES.get(level)
    shown = f"[{style}]{level:<8}[/]" if style else f"{level:<8}"
    return f"{precise_time(log.time)} | {shown}| {escape(log.logger_name)} - {escape(log.message)}"


def watch_line(event: FlowRunEvent) -> str:
    """One line per state change: time, sequence, state, message; a task run's name first."""
    state = event.state
    prefix = ""
    if event.task_run_state is not None:
        state = event.task_run_state
        prefix = f"task {escape(event.task_run_name or event.task_run_id)}: "
    line = f"{precise_time(event.time)}  #{event.sequence:<3} {prefix}{state_label(state)}"
    if state is not None and state.message:
        line += f"  {escape(state.message)}"
    return line


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

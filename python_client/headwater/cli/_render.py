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
from collections.abc import Mapping
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
#: A result longer than this is cut in a table of task runs.
RESULT_CELL_CHARS = 40


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
    if run.deployment_id:
        scheduled = " (created by a schedule)" if run.auto_scheduled else ""
        rows.append(("Deployment", f"{run.deployment_id}{scheduled}"))
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
    from headwater._states import UnstoredResult

    data = state.data
    if isinstance(data, ResultReference):
        return f"persisted to {data.storage_key} ({data.serializer})"
    if isinstance(data, UnstoredResult):
        return "not stored (not JSON or too large, and not persisted: see persist_result)"
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):
        text = repr(data)
    if len(text) > RESULT_PREVIEW_CHARS:
        text = text[:RESULT_PREVIEW_CHARS] + f"... ({len(text)} characters in all)"
    return text


def short_result(state: State[Any] | None) -> str:
    """A completed state's result in a table cell: a short preview, or how it was persisted
    (`task-run inspect` shows where); "-" for other states."""
    from headwater._results import ResultReference
    from headwater._states import UnstoredResult

    if state is None or not state.is_completed():
        return "-"
    data = state.data
    if isinstance(data, ResultReference):
        return f"persisted ({data.serializer})"
    if isinstance(data, UnstoredResult):
        return "not stored"
    text = result_text(state)
    return text if len(text) <= RESULT_CELL_CHARS else text[: RESULT_CELL_CHARS - 3] + "..."


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


def task_runs_table(task_runs: list[TaskRun], *, with_flow_run: bool = False) -> Any:
    """One row per task run: state, attempts, when it started and ended, and how long it ran.

    ``with_flow_run`` adds the flow run each belongs to (`headwater task-run ls`); a task run
    called outside any flow shows "-" there.
    """
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TASK RUN", no_wrap=True)
    table.add_column("ID", no_wrap=True)
    if with_flow_run:
        table.add_column("FLOW RUN", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("RUNS", justify="right")
    table.add_column("STARTED", no_wrap=True)
    table.add_column("ENDED", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    table.add_column("RESULT", no_wrap=True)
    for task_run in task_runs:
        row = [escape(task_run.name), task_run.id]
        if with_flow_run:
            row.append(task_run.flow_run_id or "-")
        row += [
            state_label(task_run.state),
            str(task_run.run_count),
            precise_time(task_run.start_time),
            precise_time(task_run.end_time),
            duration(task_run.total_run_time) if task_run.start_time else "-",
            escape(short_result(task_run.state)),
        ]
        table.add_row(*row)
    return table


def task_run_details(task_run: TaskRun) -> Any:
    """A two-column sheet of one task run's fields: the top of `headwater task-run inspect`."""
    from rich.table import Table

    sheet = Table.grid(padding=(0, 2))
    sheet.add_column(style="bold", no_wrap=True)
    sheet.add_column()
    state = task_run.state
    rows = [
        ("ID", task_run.id),
        ("Name", escape(task_run.name)),
        ("Task key", escape(task_run.task_key)),
        ("Flow run", task_run.flow_run_id or "- (called outside any flow)"),
        ("State", state_label(state)),
        ("Message", escape(state.message) if state and state.message else "-"),
        ("Run count", str(task_run.run_count)),
        ("Parameters", escape(json.dumps(task_run.parameters))),
        ("Tags", escape(", ".join(task_run.tags)) or "-"),
        ("Created", timestamp(task_run.created)),
        ("Started", timestamp(task_run.start_time)),
        ("Ended", timestamp(task_run.end_time)),
        ("Run time", duration(task_run.total_run_time)),
    ]
    if task_run.cache_key:
        rows.append(("Cache key", escape(task_run.cache_key)))
    if task_run.retries:
        retry = f"{task_run.retries} (delay {duration(task_run.retry_delay_seconds)})"
        rows.append(("Retries", retry))
    if task_run.failure is not None:
        failure = f"{task_run.failure.exception_type}: {task_run.failure.message}"
        rows.append(("Failure", escape(failure)))
    if state is not None and state.is_completed():
        rows.append(("Result", escape(result_text(state))))
    for label, value in rows:
        sheet.add_row(label, value or "-")
    return sheet


def states_table(states: list[State[Any]]) -> Any:
    """One row per state a task run went through, oldest first."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("TIME", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("MESSAGE")
    for number, state in enumerate(states, start=1):
        table.add_row(
            str(number),
            precise_time(state.timestamp),
            state_label(state),
            escape(state.message or ""),
        )
    return table


def log_line(
    log: Log,
    task_run_names: Mapping[str, str] | None = None,
    flow_run_name: str | None = None,
) -> str:
    """One stored log line: time, level, where it came from, message.

    A task run's line is shown under the task run's name (from ``task_run_names``, else its
    id), and a line of the flow run's own logger (``get_run_logger()``, captured prints)
    under ``flow_run_name``, as the engine printed them while the run ran; other lines under
    their logger's name.
    """
    from headwater._logging import FLOW_RUN_LOGGER

    level = log.level_name
    style = _LEVEL_STYLES.get(level)
    shown = f"[{style}]{level:<8}[/]" if style else f"{level:<8}"
    if log.task_run_id:
        name = (task_run_names or {}).get(log.task_run_id, log.task_run_id)
        source = f"Task run {escape(repr(name))}"
    elif flow_run_name is not None and log.logger_name == FLOW_RUN_LOGGER:
        source = f"Flow run {escape(repr(flow_run_name))}"
    else:
        source = escape(log.logger_name)
    return f"{precise_time(log.time)} | {shown}| {source} - {escape(log.message)}"


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

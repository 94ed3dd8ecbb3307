"""How the CLI shows deployments and work pools: tables for `ls`, a sheet for `inspect`.

The deployment twin of `_render` (whose helpers for times, states and escaping it uses); it takes
the SDK's records (`Deployment`, `WorkPool`, `WorkQueue`) that `headwater.client` returns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from headwater.cli._render import escape, timestamp

if TYPE_CHECKING:
    from headwater._deployment_records import Deployment, WorkPool, WorkQueue


def _schedules_text(deployment: Deployment) -> str:
    """ "every 1:00:00", "2 schedules", "-": a table cell's worth of its schedules."""
    active = [s for s in deployment.schedules if s.active]
    if not deployment.schedules:
        return "-"
    if len(deployment.schedules) == 1:
        only = deployment.schedules[0]
        return only.describe() + ("" if only.active else " (inactive)")
    return f"{len(deployment.schedules)} schedules ({len(active)} active)"


def status(deployment: Deployment) -> str:
    return "[blue]paused[/]" if deployment.paused else "[green]ready[/]"


def deployments_table(deployments: list[Deployment]) -> Any:
    """One row per deployment: what `headwater deployment ls` prints."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("NAME", no_wrap=True)
    table.add_column("ID", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("WORK POOL", no_wrap=True)
    table.add_column("SCHEDULES")
    table.add_column("CREATED", no_wrap=True)
    for deployment in deployments:
        pool = deployment.work_pool_name
        table.add_row(
            escape(deployment.full_name),
            deployment.id,
            status(deployment),
            escape(f"{pool}/{deployment.work_queue_name}") if pool else "-",
            escape(_schedules_text(deployment)),
            timestamp(deployment.created),
        )
    return table


def deployment_details(deployment: Deployment) -> Any:
    """A two-column sheet of one deployment: the top of `headwater deployment inspect`."""
    from rich.table import Table

    sheet = Table.grid(padding=(0, 2))
    sheet.add_column(style="bold", no_wrap=True)
    sheet.add_column()
    limit = deployment.concurrency_limit
    code = deployment.path or deployment.git_url or "-"
    if deployment.git_url and deployment.git_branch:
        code += f" (branch {deployment.git_branch})"
    schema = deployment.parameter_openapi_schema
    rows = [
        ("Name", escape(deployment.full_name)),
        ("ID", deployment.id),
        ("Flow", f"{escape(deployment.flow_name)} ({deployment.flow_id})"),
        ("Status", status(deployment)),
        ("Description", escape(deployment.description) or "-"),
        ("Version", escape(deployment.version or "-")),
        ("Tags", escape(", ".join(deployment.tags)) or "-"),
        ("Entrypoint", escape(deployment.entrypoint or "-")),
        ("Code", escape(code)),
        ("Parameters", escape(json.dumps(deployment.parameters))),
        (
            "Parameter schema",
            "-"
            if schema is None
            else ("enforced" if deployment.enforce_parameter_schema else "not enforced")
            + f" ({len(schema.get('properties', {}))} parameters)",
        ),
        ("Work pool", escape(deployment.work_pool_name or "-")),
        ("Work queue", escape(deployment.work_queue_name or "-")),
        ("Job variables", escape(json.dumps(deployment.job_variables))),
        (
            "Concurrency",
            "no limit" if limit is None else f"{limit} ({deployment.collision_strategy})",
        ),
        ("Created", timestamp(deployment.created)),
        ("Updated", timestamp(deployment.updated)),
    ]
    for label, value in rows:
        sheet.add_row(label, value or "-")
    return sheet


def schedules_table(deployment: Deployment) -> Any:
    """One row per schedule of a deployment."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("SCHEDULE")
    table.add_column("ACTIVE", no_wrap=True)
    table.add_column("PARAMETERS")
    table.add_column("ID", no_wrap=True)
    for schedule in deployment.schedules:
        table.add_row(
            escape(schedule.describe()),
            "yes" if schedule.active else "no",
            escape(json.dumps(schedule.parameters)) if schedule.parameters else "-",
            schedule.id,
        )
    return table


def work_pools_table(pools: list[WorkPool]) -> Any:
    """One row per work pool: what `headwater work-pool ls` prints."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("NAME", no_wrap=True)
    table.add_column("TYPE", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("CONCURRENCY", justify="right")
    table.add_column("ID", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    for pool in pools:
        table.add_row(
            escape(pool.name),
            escape(pool.type),
            "[blue]paused[/]" if pool.paused else "[green]ready[/]",
            "-" if pool.concurrency_limit is None else str(pool.concurrency_limit),
            pool.id,
            timestamp(pool.created),
        )
    return table


def work_queues_table(queues: list[WorkQueue]) -> Any:
    """One row per queue of a pool, highest priority first."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("QUEUE", no_wrap=True)
    table.add_column("PRIORITY", justify="right")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("CONCURRENCY", justify="right")
    for queue in queues:
        table.add_row(
            escape(queue.name),
            str(queue.priority),
            "[blue]paused[/]" if queue.paused else "[green]ready[/]",
            "-" if queue.concurrency_limit is None else str(queue.concurrency_limit),
        )
    return table

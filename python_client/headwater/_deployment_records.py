"""The SDK's read-only records of deployments, their schedules, work pools and work queues.

Like the run records in `headwater._runs`, these are frozen dataclasses of plain Python values
built by the transport (`headwater._transport.client_deployments`) from the service's messages,
each keeping its message in ``raw``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Deployment", "DeploymentSchedule", "WorkPool", "WorkQueue"]


@dataclass(frozen=True, slots=True)
class DeploymentSchedule:
    """One schedule of a deployment, in the shape of Prefect's ``prefect.schedules.Schedule``:
    exactly one of ``interval``, ``cron`` and ``rrule`` is set.

    Attributes:
        id: The service's UUID for the schedule.
        active: Whether the scheduler creates runs from it.
        interval: The time between runs of an interval schedule.
        anchor_date: When an interval schedule's intervals are counted from (None: the default).
        cron: A cron schedule's expression.
        day_or: For a cron schedule, whether day-of-month and day-of-week combine with OR.
        rrule: An RRULE schedule's rule text.
        timezone: The IANA time zone the schedule is read in (None: UTC).
        parameters: Parameters merged over the deployment's for this schedule's runs.
        max_scheduled_runs: How many runs it keeps created ahead (None: the service default).
        raw: The ``headwater.v1.DeploymentSchedule`` message.
    """

    id: str
    active: bool = True
    interval: _dt.timedelta | None = None
    anchor_date: _dt.datetime | None = None
    cron: str | None = None
    day_or: bool = True
    rrule: str | None = None
    timezone: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    max_scheduled_runs: int | None = None
    raw: Any = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """The schedule for people: "every 1:00:00", "cron '0 9 * * *' (Europe/Paris)"."""
        zone = f" ({self.timezone})" if self.timezone else ""
        if self.interval is not None:
            return f"every {self.interval}{zone}"
        if self.cron is not None:
            return f"cron '{self.cron}'{zone}"
        if self.rrule is not None:
            return f"rrule '{self.rrule}'{zone}"
        return "-"


@dataclass(frozen=True, slots=True)
class Deployment:
    """A flow packaged to run on request or on schedules, as the service stores it.

    Attributes:
        id: The service's UUID for the deployment.
        name: The deployment's name, unique among its flow's deployments.
        flow_id: The flow's UUID.
        flow_name: The flow's name; ``f"{flow_name}/{name}"`` names the deployment.
        description: What it is for.
        version: The version of the flow's code.
        tags: Labels, given to its runs too.
        entrypoint: Where the flow function is ("flows/etl.py:etl").
        path: The directory the entrypoint is relative to, else None.
        git_url: The git repository the code is cloned from, else None.
        git_branch: The branch (or tag) of that repository, else None.
        git_commit: The commit of that repository to check out, else None (the branch's head).
        parameters: Default parameters.
        parameter_openapi_schema: The JSON Schema of the flow's parameters (as Prefect calls it).
        enforce_parameter_schema: Whether runs' parameters must satisfy that schema.
        schedules: Its schedules, in order.
        paused: Whether it is paused (no scheduled runs, runs on request refused).
        concurrency_limit: The most runs that may run at once, else None.
        collision_strategy: "ENQUEUE" or "CANCEL_NEW": what a run over the limit does.
        work_pool_name: The work pool running it, else None (a served deployment).
        work_queue_name: The queue of that pool, else None.
        job_variables: Settings for the worker's job.
        created: When it was created.
        updated: When it last changed.
        raw: The ``headwater.v1.Deployment`` message.
    """

    id: str
    name: str
    flow_id: str
    flow_name: str
    description: str = ""
    version: str | None = None
    tags: tuple[str, ...] = ()
    entrypoint: str | None = None
    path: str | None = None
    git_url: str | None = None
    git_branch: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_openapi_schema: dict[str, Any] | None = None
    enforce_parameter_schema: bool = True
    schedules: tuple[DeploymentSchedule, ...] = ()
    paused: bool = False
    concurrency_limit: int | None = None
    collision_strategy: str = "ENQUEUE"
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)
    created: _dt.datetime | None = None
    updated: _dt.datetime | None = None
    raw: Any = field(default=None, repr=False, compare=False)
    git_commit: str | None = None

    @property
    def full_name(self) -> str:
        """ "flow-name/deployment-name", as `get_deployment` and the CLI accept it."""
        return f"{self.flow_name}/{self.name}"


@dataclass(frozen=True, slots=True)
class WorkPool:
    """A work pool: workers of one type and the queues their runs wait in.

    Attributes:
        id: The service's UUID for the pool.
        name: Its unique name.
        type: The kind of worker that serves it ("process").
        description: What it is for.
        paused: Whether workers are handed no runs from it.
        concurrency_limit: The most runs of the pool that may run at once, else None.
        base_job_template: Default job settings that deployments' job variables are merged over.
        created: When it was created.
        updated: When it last changed.
        raw: The ``headwater.v1.WorkPool`` message.
    """

    id: str
    name: str
    type: str = "process"
    description: str = ""
    paused: bool = False
    concurrency_limit: int | None = None
    base_job_template: dict[str, Any] = field(default_factory=dict)
    created: _dt.datetime | None = None
    updated: _dt.datetime | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WorkQueue:
    """One queue of a work pool.

    Attributes:
        id: The service's UUID for the queue.
        name: Its name, unique within its pool.
        work_pool_name: The pool it belongs to.
        description: What it is for.
        paused: Whether workers are handed no runs from it.
        concurrency_limit: The most runs of the queue that may run at once, else None.
        priority: 1 is the highest; workers take runs from higher-priority queues first.
        created: When it was created.
        updated: When it last changed.
        raw: The ``headwater.v1.WorkQueue`` message.
    """

    id: str
    name: str
    work_pool_name: str
    description: str = ""
    paused: bool = False
    concurrency_limit: int | None = None
    priority: int = 1
    created: _dt.datetime | None = None
    updated: _dt.datetime | None = None
    raw: Any = field(default=None, repr=False, compare=False)

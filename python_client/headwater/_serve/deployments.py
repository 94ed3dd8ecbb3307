"""Deployments made from flows in this process, and serving them (Prefect's ``RunnerDeployment``).

`Flow.to_deployment` builds a `RunnerDeployment`: the flow's entrypoint (its file relative to
the working directory, which becomes the code directory), its parameter schema, and the
schedules made from ``interval``/``cron``/``rrule``/``schedules``. `serve` registers the given
deployments with the service (creating them, or updating those that exist) and runs a `Runner`
for their due runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import datetime as _dt
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater._deployment_records import DeploymentSchedule

if TYPE_CHECKING:
    from headwater.client import HeadwaterClient

__all__ = ["RunnerDeployment", "serve", "serve_flow"]

Interval = int | float | _dt.timedelta


@dataclass
class RunnerDeployment:
    """A deployment of a flow, ready to be served (`serve`) or registered (`apply`).

    Attributes mirror Prefect's ``RunnerDeployment``: ``name``, ``flow_name``, ``entrypoint``
    (``"path/to/file.py:function"``, relative to the code location), ``path`` (the code
    directory) or ``git_url``/``git_branch``/``git_commit`` (a repository cloned per run),
    ``schedules``, ``paused``, ``concurrency_limit``, ``parameters``, ``description``,
    ``version``, ``tags``, ``enforce_parameter_schema``, ``work_pool_name``,
    ``work_queue_name`` and ``job_variables``.
    """

    name: str
    flow_name: str
    entrypoint: str
    path: str | None = None
    schedules: list[DeploymentSchedule] = field(default_factory=list)
    paused: bool | None = None
    concurrency_limit: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    version: str | None = None
    tags: list[str] = field(default_factory=list)
    enforce_parameter_schema: bool = True
    parameter_openapi_schema: dict[str, Any] | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)
    git_url: str | None = None
    git_branch: str | None = None
    git_commit: str | None = None

    @property
    def full_name(self) -> str:
        """``flow-name/deployment-name``, as the CLI names it."""
        return f"{self.flow_name}/{self.name}"

    @classmethod
    def from_flow(
        cls,
        flow: Any,
        name: str,
        *,
        interval: Iterable[Interval] | Interval | None = None,
        cron: Iterable[str] | str | None = None,
        rrule: Iterable[str] | str | None = None,
        schedules: Iterable[Any] | None = None,
        **fields: Any,
    ) -> RunnerDeployment:
        """The deployment of ``flow`` (a `Flow`) named ``name``; ``fields`` are the dataclass's
        others. (Typed loosely: the flows module imports this one, not the reverse.)"""
        location, entrypoint = _entrypoint_of(flow)
        return cls(
            name=name,
            flow_name=flow.name,
            entrypoint=entrypoint,
            **location,
            schedules=make_schedules(interval, cron, rrule, schedules),
            parameter_openapi_schema=flow.parameters,
            description=fields.pop("description", None) or flow.description,
            version=fields.pop("version", None) or flow.version,
            **fields,
        )

    def apply(self, client: HeadwaterClient) -> str:
        """Create the deployment, or update it when the flow has one of that name; its id."""
        from headwater.exceptions import ObjectAlreadyExists

        settings: dict[str, Any] = {
            "description": self.description or "",
            "version": self.version or "",
            "tags": self.tags,
            "entrypoint": self.entrypoint,
            **self._code_location(),
            "parameters": self.parameters,
            "parameter_openapi_schema": self.parameter_openapi_schema,
            "enforce_parameter_schema": self.enforce_parameter_schema,
            "schedules": self.schedules,
            "concurrency_limit": self.concurrency_limit,
            "work_pool_name": self.work_pool_name,
            "work_queue_name": self.work_queue_name,
            "job_variables": self.job_variables,
        }
        if not self.work_pool_name:
            # A served deployment has no pool, and a queue needs one: naming it (even as the
            # default) made serving the same deployment again fail INVALID_ARGUMENT.
            del settings["work_queue_name"]
        try:
            created = client.create_deployment(
                flow_name=self.flow_name, name=self.name, paused=bool(self.paused), **settings
            )
            return created.id
        except ObjectAlreadyExists:
            existing = client.get_deployment(self.full_name)
        client.update_deployment(existing.id, **settings)
        if self.paused and not existing.paused:
            client.pause_deployment(existing.id)
        elif not self.paused and existing.paused:
            client.resume_deployment(existing.id)
        return existing.id

    def _code_location(self) -> dict[str, Any]:
        if self.git_url:
            return {
                "git_url": self.git_url,
                "git_branch": self.git_branch,
                "git_commit": self.git_commit,
            }
        return {"path": self.path}


def make_schedules(
    interval: Iterable[Interval] | Interval | None,
    cron: Iterable[str] | str | None,
    rrule: Iterable[str] | str | None,
    schedules: Iterable[Any] | None,
) -> list[DeploymentSchedule]:
    """Schedules from Prefect's ``interval``/``cron``/``rrule``/``schedules`` arguments.

    Raises:
        ValueError: More than one of them was given.
    """
    given = [arg for arg in (interval, cron, rrule, schedules) if arg is not None]
    if len(given) > 1:
        raise ValueError("Only one of interval, cron, rrule, or schedules can be provided.")
    if schedules is not None:
        return list(schedules)
    made: list[DeploymentSchedule] = []
    if interval is not None:
        items = interval if isinstance(interval, Iterable) else [interval]
        for value in items:
            every = value if isinstance(value, _dt.timedelta) else _dt.timedelta(seconds=value)
            if every <= _dt.timedelta(0):
                raise ValueError(f"interval must be positive, not {value!r}.")
            made.append(DeploymentSchedule(id="", interval=every))
    for text in [cron] if isinstance(cron, str) else list(cron or ()):
        made.append(DeploymentSchedule(id="", cron=text))
    for text in [rrule] if isinstance(rrule, str) else list(rrule or ()):
        made.append(DeploymentSchedule(id="", rrule=text))
    return made


def _entrypoint_of(flow: Any) -> tuple[dict[str, Any], str]:
    """(code location fields, entrypoint) of a flow.

    A flow loaded by `Flow.from_source` keeps its source and the entrypoint it was given;
    another flow must be defined in a file, named by its path from the working directory
    (which becomes the code directory).
    """
    storage = getattr(flow, "_storage", None)
    if storage is not None and flow._entrypoint:
        return storage.location(), flow._entrypoint
    try:
        source = inspect.getsourcefile(flow.fn)
    except TypeError:
        source = None
    if source is None or not Path(source).exists():
        raise ValueError(
            f"Flow {flow.name!r} was not defined in a file, so a process cannot load it to run "
            "it: define it in a .py file (not in an interactive session)."
        )
    cwd = Path.cwd()
    file = Path(source).resolve()
    shown = file.relative_to(cwd) if file.is_relative_to(cwd) else file
    return {"path": str(cwd)}, f"{shown.as_posix()}:{flow.fn.__name__}"


def serve(
    *deployments: RunnerDeployment,
    pause_on_shutdown: bool = True,
    print_starting_message: bool = True,
    limit: int | None = None,
    **kwargs: Any,
) -> None:
    """Register ``deployments`` and run their due runs here until SIGTERM or SIGINT.

    Args:
        *deployments: What `Flow.to_deployment` returned.
        pause_on_shutdown: Turn the deployments' schedules off when serving stops, so runs do
            not pile up while nothing serves them.
        print_starting_message: Print what is served and how to trigger a run.
        limit: The most runs at once in this process; None means no limit.
        **kwargs: More `Runner` arguments (``name``).
    """
    for deployment in deployments:
        if not isinstance(deployment, RunnerDeployment):
            raise TypeError(
                f"serve() takes deployments made by Flow.to_deployment(), not {deployment!r}."
            )
    message = _starting_message(deployments) if print_starting_message else None
    _serve(deployments, message, pause_on_shutdown=pause_on_shutdown, limit=limit, **kwargs)


def serve_flow(
    deployment: RunnerDeployment, *, print_starting_message: bool = True, **kwargs: Any
) -> None:
    """What `Flow.serve` does with its one deployment: `serve`, with the flow's message."""
    message = (
        f"Your flow {deployment.flow_name!r} is being served and polling for scheduled "
        "runs!\n\nTo trigger a run for this flow, use the following command:\n\n"
        f"\t$ headwater deployment run '{deployment.full_name}'\n"
    )
    _serve([deployment], message if print_starting_message else None, **kwargs)


def _serve(
    deployments: Sequence[RunnerDeployment],
    message: str | None,
    *,
    pause_on_shutdown: bool = True,
    limit: int | None = None,
    **kwargs: Any,
) -> None:
    """Register ``deployments``, then run a `Runner` for them; ``message`` is printed once
    SIGTERM would stop it cleanly."""
    from headwater._serve.runner import Runner
    from headwater.client import get_client

    runner = Runner(limit=limit, **kwargs)
    with get_client(sync_client=True, address=runner.address) as client:
        ids = [deployment.apply(client) for deployment in deployments]
    runner.deployment_ids = ids
    if pause_on_shutdown:
        runner.on_stop.append(lambda: _pause_schedules(runner.address, ids))
    runner.run_forever(on_ready=None if message is None else lambda: print(message, flush=True))


def _starting_message(deployments: Iterable[RunnerDeployment]) -> str:
    names = "\n".join(f"  {deployment.full_name}" for deployment in deployments)
    return (
        "Your deployments are being served and polling for scheduled runs!\n\n"
        f"Deployments:\n{names}\n\n"
        "To trigger any of these deployments, use the following command:\n\n"
        "\t$ headwater deployment run [DEPLOYMENT_NAME]\n"
    )


def _pause_schedules(address: str | None, deployment_ids: Iterable[str]) -> None:
    """Turn off the served deployments' schedules (their runs created ahead are removed)."""
    from headwater.client import get_client

    with get_client(sync_client=True, address=address) as client:
        for deployment_id in deployment_ids:
            deployment = client.get_deployment(deployment_id)
            if any(schedule.active for schedule in deployment.schedules):
                client.update_deployment(
                    deployment_id,
                    schedules=[replace(s, active=False) for s in deployment.schedules],
                )

"""Deploying to a work pool (``Flow.deploy``, ``headwater.deploy``), as Prefect's ``deploy``.

A deployed flow is run by the pool's workers (``headwater worker start --pool NAME``), each run
in a subprocess loaded from the deployment's code location. Headwater's pools are process pools:
the code must be reachable from the worker's machine as a directory (the flow's file, or
`Flow.from_source` of a directory) or a git repository (`Flow.from_source` of a URL). No image
is built or pushed, so ``image=`` is refused with a message that says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from headwater._serve.deployments import RunnerDeployment

__all__ = ["deploy", "next_steps"]


def deploy(
    *deployments: RunnerDeployment,
    work_pool_name: str | None = None,
    image: Any = None,
    build: bool = True,
    push: bool = True,
    print_next_steps_message: bool = True,
    ignore_warnings: bool = False,
) -> list[uuid.UUID]:
    """Register ``deployments`` to run on a work pool's workers; their ids, in order.

    Args:
        *deployments: What `Flow.to_deployment` returned.
        work_pool_name: The pool for deployments that name none; defaults to the
            ``HEADWATER_DEFAULT_WORK_POOL_NAME`` setting.
        image: Refused: Headwater's process pools run code from a directory or git, not images.
        build: Accepted for Prefect compatibility; there is no image to build.
        push: Accepted for Prefect compatibility; there is no image to push.
        print_next_steps_message: Print how to start a worker and trigger a run.
        ignore_warnings: Accepted for Prefect compatibility.

    Raises:
        ValueError: No deployments, an image, no work pool named, or a pool that does not
            exist.
        TypeError: Something other than a deployment was given.
    """
    from headwater._settings import get_settings
    from headwater.client import get_client
    from headwater.exceptions import ObjectNotFound

    if not deployments:
        raise ValueError("deploy() needs at least one deployment (from Flow.to_deployment()).")
    for deployment in deployments:
        if not isinstance(deployment, RunnerDeployment):
            raise TypeError(
                f"deploy() takes deployments made by Flow.to_deployment(), not {deployment!r}."
            )
    refuse_images(image)
    default_pool = work_pool_name or get_settings().default_work_pool_name
    chosen = [replace(d, work_pool_name=d.work_pool_name or default_pool) for d in deployments]
    unnamed = [d.full_name for d in chosen if not d.work_pool_name]
    if unnamed:
        raise ValueError(
            f"No work pool name provided for {', '.join(unnamed)}. Please provide a "
            "`work_pool_name` or set the HEADWATER_DEFAULT_WORK_POOL_NAME environment variable."
        )
    with get_client(sync_client=True) as client:
        for pool_name in sorted({d.work_pool_name for d in chosen if d.work_pool_name}):
            try:
                client.get_work_pool(pool_name)
            except ObjectNotFound:
                raise ValueError(
                    f"Could not find work pool {pool_name!r}. Please create it before deploying "
                    f"this flow: headwater work-pool create {pool_name!r}"
                ) from None
        ids = [uuid.UUID(deployment.apply(client)) for deployment in chosen]
    if print_next_steps_message:
        print(next_steps(chosen), flush=True)
    return ids


def refuse_images(image: Any) -> None:
    """Refuse ``image=``: there is no container build or registry here.

    Raises:
        ValueError: ``image`` was given.
    """
    if image is not None:
        raise ValueError(
            "Headwater does not build, push or run images: its work pools are process pools, "
            "whose workers run each flow run in a subprocess from the deployment's code "
            "location. Leave out image= (build= and push= then do nothing), and make the code "
            "reachable from the worker: deploy from the flow's directory, or use "
            "Flow.from_source() with a directory or a git repository."
        )


def next_steps(deployments: Sequence[RunnerDeployment]) -> str:
    """What to do after deploying: start a worker of each pool, then trigger a run."""
    lines: list[str] = []
    if len(deployments) > 1:
        lines += ["Successfully created/updated all deployments!", ""]
        lines += [f"  {d.full_name}  (work pool {d.work_pool_name!r})" for d in deployments]
        lines.append("")
    for pool in sorted({d.work_pool_name for d in deployments if d.work_pool_name}):
        lines += [
            "To execute flow runs from this deployment, start a worker in a separate terminal "
            f"that pulls work from the {pool!r} work pool:",
            "",
            f"\t$ headwater worker start --pool {pool!r}",
            "",
        ]
    lines += ["To schedule a run for this deployment, use the following command:", ""]
    if len(deployments) == 1:
        lines.append(f"\t$ headwater deployment run '{deployments[0].full_name}'")
    else:
        lines.append("\t$ headwater deployment run [DEPLOYMENT_NAME]")
    return "\n".join(lines) + "\n"

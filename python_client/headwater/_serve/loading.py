"""Loading the flow of a deployment's run: from its entrypoint, in its code location.

The process a runner starts for a run (`headwater._serve.execute`) and
`headwater.flows.load_flow_from_flow_run` both use `load_flow_for_run`. A git code location is
cloned (`headwater._serve.source.clone`) into a temporary directory first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater._deployment_records import Deployment
    from headwater._flows import Flow
    from headwater._runs import FlowRun
    from headwater.client import HeadwaterClient

__all__ = [
    "adopt_retry_policy",
    "load_flow_for_run",
    "load_flow_from_flow_run",
    "load_flow_of_deployment",
]


def load_flow_for_run(
    client: HeadwaterClient,
    flow_run: FlowRun,
    *,
    ignore_storage: bool = False,
    use_placeholder_flow: bool = True,
) -> Flow[..., Any]:
    """The flow of ``flow_run``'s deployment, loaded from its entrypoint and code location.

    Raises:
        ValueError: The run has no deployment, or the deployment no entrypoint.
    """
    if not flow_run.deployment_id:
        raise ValueError(
            f"Flow run {flow_run.id} was not created from a deployment, so there is no code "
            "location to load its flow from."
        )
    deployment = client.get_deployment(flow_run.deployment_id)
    return load_flow_of_deployment(
        deployment, ignore_storage=ignore_storage, use_placeholder_flow=use_placeholder_flow
    )


def load_flow_of_deployment(
    deployment: Deployment, *, ignore_storage: bool = False, use_placeholder_flow: bool = True
) -> Flow[..., Any]:
    """The flow of ``deployment``, loaded from its entrypoint and code location (a git
    repository is cloned first, and this process moves into the clone).

    Raises:
        ValueError: The deployment has no entrypoint.
    """
    from headwater._entrypoints import load_flow_from_entrypoint
    from headwater._serve.handoff import entrypoint_in

    if not deployment.entrypoint:
        raise ValueError(
            f"Deployment {deployment.id} does not have an entrypoint and can not be run."
        )
    directory = None if ignore_storage else _code_directory(deployment)
    return load_flow_from_entrypoint(
        entrypoint_in(deployment.entrypoint, directory), use_placeholder_flow=use_placeholder_flow
    )


def adopt_retry_policy(flow_run: FlowRun, flow: Flow[..., Any]) -> bool:
    """Give a run created elsewhere its flow's ``retries`` and ``retry_delay_seconds``.

    The service decides retries from the policy a run was created with, and a deployment's
    run is created without its flow at hand (by the scheduler, or on request); the process
    that runs it has the flow, so it sets the policy before the first attempt. Nothing is sent
    (and no connection opened) when the run already has it. Returns whether it was sent.
    """
    from headwater._engine.setup import first_retry_delay
    from headwater.client import get_client

    retries = int(flow.retries or 0)
    delay = first_retry_delay(flow.retry_delay_seconds or 0)
    if (flow_run.retries, flow_run.retry_delay_seconds) == (retries, delay):
        return False
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, retries=retries, retry_delay_seconds=delay)
    return True


def _code_directory(deployment: Deployment) -> str | None:
    """The directory the deployment's entrypoint is relative to.

    A git repository is cloned first, and this process then works in the clone (as Prefect's
    pull steps leave it), so the flow finds the repository's other files by relative path.
    """
    if deployment.git_url:
        from headwater._serve.source import clone

        target = clone(deployment.git_url, deployment.git_branch, deployment.git_commit)
        os.chdir(target)
        return target
    return deployment.path


async def load_flow_from_flow_run(
    flow_run: FlowRun,
    ignore_storage: bool = False,
    storage_base_path: str | None = None,
    use_placeholder_flow: bool = True,
) -> Flow[..., Any]:
    """Load the flow of a run of a deployment from the deployment's entrypoint, as Prefect's.

    Args:
        flow_run: A run created from a deployment.
        ignore_storage: Load the entrypoint as given, relative to the working directory,
            without going to the deployment's code location (no clone).
        storage_base_path: Accepted for Prefect compatibility (code locations are paths here).
        use_placeholder_flow: When the script cannot run, build the flow from its decorator
            alone (see `load_placeholder_flow`).

    Raises:
        ValueError: The run has no deployment, or the deployment no entrypoint.
    """
    import asyncio

    from headwater.client import get_client

    def load() -> Flow[..., Any]:
        with get_client(sync_client=True) as client:
            return load_flow_for_run(
                client,
                flow_run,
                ignore_storage=ignore_storage,
                use_placeholder_flow=use_placeholder_flow,
            )

    return await asyncio.to_thread(load)

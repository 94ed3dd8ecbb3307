"""The public deployments module, mirroring ``prefect.deployments``: `run_deployment`,
`RunnerDeployment` (what `Flow.to_deployment` returns) and `deploy` (to a work pool)."""

from __future__ import annotations

import datetime as _dt
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from headwater._runs import FlowRun
from headwater._serve.deploy import deploy
from headwater._serve.deployments import RunnerDeployment

__all__ = ["RunnerDeployment", "deploy", "run_deployment"]


def run_deployment(
    name: str | uuid.UUID,
    parameters: dict[str, Any] | None = None,
    scheduled_time: _dt.datetime | None = None,
    flow_run_name: str | None = None,
    timeout: float | None = None,
    poll_interval: float | None = 5,
    tags: Iterable[str] | None = None,
    idempotency_key: str | None = None,
    work_queue_name: str | None = None,
    as_subflow: bool | None = True,
    job_variables: dict[str, Any] | None = None,
) -> FlowRun:
    """Create a run of a deployment and wait for it to end, as Prefect's ``run_deployment``.

    Args:
        name: ``"flow-name/deployment-name"``, or the deployment's id.
        parameters: Merged over the deployment's defaults (checked against its schema).
        scheduled_time: When the run is due; None means now.
        flow_run_name: The run's name; None lets the service pick one.
        timeout: Seconds to wait for the run to end; None waits until it does, 0 returns at
            once. The run is returned as it is then.
        poll_interval: Accepted for Prefect compatibility: the run's states are streamed, not
            polled.
        tags: Labels added to the deployment's for this run.
        idempotency_key: Makes the run exist once: a second call with the key is refused.
        work_queue_name: Accepted for Prefect compatibility; the deployment's queue is used.
        as_subflow: Accepted for Prefect compatibility (the run is not linked to a caller).
        job_variables: Job variables for this run only, merged over the deployment's (and
            its work pool's) as those are: ``env`` key by key (None removes a variable),
            ``working_dir`` replaced.

    Returns:
        The run as it was when it ended (or when ``timeout`` passed).

    Raises:
        ValueError: ``timeout`` is negative.
        ObjectNotFound: No such deployment.
        InvalidRequest: The parameters do not fit the deployment's schema, or
            ``job_variables`` is not a mapping.
    """
    from headwater.client import get_client

    if timeout is not None and timeout < 0:
        raise ValueError("`timeout` cannot be negative")
    with get_client(sync_client=True) as client:
        deployment = client.get_deployment(str(name))
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters=parameters,
            name=flow_run_name,
            tags=tags or (),
            idempotency_key=idempotency_key,
            scheduled_time=scheduled_time,
            job_variables=job_variables,
        )
        if timeout == 0:
            return run
        _wait_for_end(client, run.id, timeout)
        return client.get_flow_run(run.id)


def _wait_for_end(client: Any, flow_run_id: str, timeout: float | None) -> None:
    """Follow the run's watch stream until it ends, or until ``timeout`` seconds pass."""
    done = threading.Event()

    def follow() -> None:
        try:
            for _item in client.watch_flow_run(flow_run_id):
                pass
        finally:
            done.set()

    deadline = None if timeout is None else time.monotonic() + timeout
    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    done.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))

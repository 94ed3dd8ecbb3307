"""Background upkeep inside the service: work no request triggers but the database needs.

- Pruning the request log. Every create with a ``request_id`` and every state proposal with a
  ``transition_id`` stores its answer so that a retry after a dropped connection gets the same
  answer; without pruning, that table would grow by one row per state change forever. Retries
  arrive within a client's retry window (a minute by default), so answers older than the
  retention (a day by default) are safe to forget.
- Retention: finished runs (with their task runs, states and log lines) and log lines older
  than the settings say are deleted in short batches, so writers never wait long behind it.

Each loop is its own coroutine started by the server (:func:`repeat_forever` keeps it alive
through failures); the scheduling loops live in :mod:`headwater_server.scheduling`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater_server.storage import convert

if TYPE_CHECKING:
    from headwater_server.storage.database import Database

logger = logging.getLogger("headwater_server.housekeeping")

DEFAULT_PRUNE_INTERVAL_SECONDS = 600.0
# Flow runs per retention batch (Prefect's database vacuum deletes 200 at a time too).
DEFAULT_EXPIRY_BATCH = 200


async def repeat_forever(
    what: str, interval_seconds: float, one_pass: Callable[[], Awaitable[object]]
) -> None:
    """Await ``one_pass()`` now and then every ``interval_seconds``, until cancelled.

    A failed pass is logged and retried at the next interval: upkeep must never take the server
    down (the server cancels the loop on shutdown).
    """
    while True:
        try:
            await one_pass()
        except Exception:
            logger.exception(
                "%s failed; retrying in %.0f s. Requests are unaffected.", what, interval_seconds
            )
        await asyncio.sleep(interval_seconds)


async def prune_request_log_forever(
    db: Database,
    retention_seconds: float,
    interval_seconds: float = DEFAULT_PRUNE_INTERVAL_SECONDS,
) -> None:
    """Prune answers older than ``retention_seconds`` now and then every ``interval_seconds``."""

    async def prune() -> None:
        removed = await db.run(db.repository.prune_request_log, retention_seconds)
        if removed:
            logger.info(
                "Pruned %d stored request answers older than %.0f s", removed, retention_seconds
            )

    await repeat_forever("Pruning the request log", interval_seconds, prune)


@dataclass(frozen=True)
class Expired:
    """What one retention pass deleted."""

    flow_runs: int = 0
    task_runs: int = 0
    logs: int = 0


async def expire_old_data(
    db: Database,
    run_retention_seconds: float | None,
    log_retention_seconds: float | None,
    batch_size: int = DEFAULT_EXPIRY_BATCH,
) -> Expired:
    """Delete finished runs and log lines past their retention (None: keep), batch by batch.

    Between batches other database calls get their turn (on SQLite they queue on the same
    database thread), so a large backlog slows nobody for more than one batch.
    """
    repo = db.repository
    now = convert.now_us()

    async def drain(operation: Callable[[int, int], int], cutoff: int) -> int:
        total = 0
        while True:
            deleted = await db.run(operation, cutoff, batch_size)
            total += deleted
            if deleted < batch_size:
                return total

    flow_runs = task_runs = lines = 0
    if run_retention_seconds is not None:
        cutoff = now - round(run_retention_seconds * 1_000_000)
        flow_runs = await drain(repo.expire_flow_runs, cutoff)
        task_runs = await drain(repo.expire_task_runs_outside_flows, cutoff)
    if log_retention_seconds is not None:
        lines = await drain(repo.expire_logs, now - round(log_retention_seconds * 1_000_000))
    return Expired(flow_runs=flow_runs, task_runs=task_runs, logs=lines)


async def expire_old_data_forever(
    db: Database,
    run_retention_seconds: float | None,
    log_retention_seconds: float | None,
    interval_seconds: float,
) -> None:
    """Run :func:`expire_old_data` now and then every ``interval_seconds``, until cancelled."""

    async def expire() -> None:
        expired = await expire_old_data(db, run_retention_seconds, log_retention_seconds)
        if expired != Expired():
            logger.info(
                "Retention: deleted %d finished flow runs, %d task runs outside flows and %d "
                "log lines past their retention",
                expired.flow_runs,
                expired.task_runs,
                expired.logs,
            )

    await repeat_forever("Expiring old runs and logs", interval_seconds, expire)

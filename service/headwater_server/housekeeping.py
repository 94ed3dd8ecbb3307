"""Background upkeep inside the service: work no request triggers but the database needs.

Today that is pruning the request log. Every create with a ``request_id`` and every state
proposal with a ``transition_id`` stores its answer so that a retry after a dropped connection
gets the same answer; without pruning, that table would grow by one row per state change
forever. Retries arrive within a client's retry window (a minute by default), so answers older
than the retention (a day by default) are safe to forget. Later loops (schedules, late runs,
crash detection) belong here too, each as its own coroutine started by the server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater_server.storage.database import Database

logger = logging.getLogger("headwater_server.housekeeping")

DEFAULT_PRUNE_INTERVAL_SECONDS = 600.0


async def prune_request_log_forever(
    db: Database,
    retention_seconds: float,
    interval_seconds: float = DEFAULT_PRUNE_INTERVAL_SECONDS,
) -> None:
    """Prune answers older than ``retention_seconds`` now and then every ``interval_seconds``.

    Runs until cancelled (the server cancels it on shutdown). A failed pass is logged and
    retried at the next interval: upkeep must never take the server down.
    """
    while True:
        try:
            removed = await db.run(db.repository.prune_request_log, retention_seconds)
        except Exception:
            logger.exception(
                "Pruning the request log failed; retrying in %.0f s. The table only grows "
                "meanwhile; requests are unaffected.",
                interval_seconds,
            )
        else:
            if removed:
                logger.info(
                    "Pruned %d stored request answers older than %.0f s", removed, retention_seconds
                )
        await asyncio.sleep(interval_seconds)

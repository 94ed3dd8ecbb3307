"""The SDK's read-only record of a tag concurrency limit.

A frozen dataclass of plain values built by the transport
(`headwater._transport.client_concurrency`) from the service's message, keeping it in ``raw``,
as the run and deployment records do.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConcurrencyLimit"]


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """The limit of one tag: at most ``concurrency_limit`` task runs with it run at once.

    Attributes:
        id: The service's UUID for the limit.
        tag: The tag it applies to.
        concurrency_limit: The most task runs with the tag that may be RUNNING at once.
        active_slots: The ids of the task runs holding a slot now, oldest first.
        created: When it was created.
        updated: When its number last changed.
        raw: The ``headwater.v1.ConcurrencyLimit`` message.
    """

    id: str
    tag: str
    concurrency_limit: int
    active_slots: tuple[str, ...] = ()
    created: _dt.datetime | None = None
    updated: _dt.datetime | None = None
    raw: Any = field(default=None, repr=False, compare=False)

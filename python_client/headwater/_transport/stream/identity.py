"""How this process names itself on the engine stream, so the service can tell when it died.

The service makes the process that creates or starts a flow run its owner, and ends the run
CRASHED when that process is gone (its stream broke and did not come back within the grace
period, or no server has heard of it for the timeout). The id stays the same across reconnects,
so a stream that comes back after a server restart keeps its runs; a forked child is a process
of its own and gets a new id. Host and pid are only for people reading the crash message.
"""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["engine_metadata"]

_identity: tuple[int, tuple[tuple[str, str], ...]] | None = None


def engine_metadata() -> tuple[tuple[str, str], ...]:
    """The ``Connect`` metadata naming this process: engine id, host and pid."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (
            pid,
            (
                ("headwater-engine-id", str(uuid.uuid4())),
                ("headwater-engine-host", socket.gethostname()),
                ("headwater-engine-pid", str(pid)),
            ),
        )
    return _identity[1]

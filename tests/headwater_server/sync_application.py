"""The application layer called synchronously, for tests in the repository's style."""

from __future__ import annotations

import asyncio
from typing import Any


class SyncApplication:
    """The application layer's operations on one ``Database``, called synchronously.

    ``application.create_flow_run(request)`` runs
    ``headwater_server.application.flow_runs.create_flow_run`` on a fresh event loop: the same
    checks, storage call and event publication a servicer gets, for tests written in the
    repository's synchronous style.
    """

    def __init__(self, database: object) -> None:
        from headwater_server.application.backend import Backend
        from headwater_server.events import EventHub

        async def no_polling(flow_run_id: str) -> int:
            raise AssertionError("nothing waits in these tests")

        self.backend = Backend(db=database, hub=EventHub(no_polling))  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        from headwater_server.application import (
            deployments,
            flow_runs,
            flows,
            logs,
            task_runs,
            work_pools,
        )

        for module in (flows, flow_runs, task_runs, logs, deployments, work_pools):
            operation = getattr(module, name, None)
            if operation is not None:
                return lambda request: asyncio.run(operation(self.backend, request))
        raise AttributeError(name)

"""The client under Prefect's module path, ``prefect.client.orchestration``.

``from prefect.client.orchestration import get_client`` ports by changing the import, and the
clients answer to Prefect's method names for the calls that mean the same
(``read_flow_run``, ``read_task_run``, ``read_deployment_by_name``...).
"""

from headwater.client import AsyncHeadwaterClient, HeadwaterClient, get_client

#: Prefect's names of the two clients: ``PrefectClient`` is the async one.
PrefectClient = AsyncHeadwaterClient
SyncPrefectClient = HeadwaterClient

__all__ = [
    "AsyncHeadwaterClient",
    "HeadwaterClient",
    "PrefectClient",
    "SyncPrefectClient",
    "get_client",
]

"""The public flows module, mirroring ``prefect.flows``.

Everything here is also reachable from where it is defined; this module exists so code written
as ``from prefect.flows import load_flow_from_entrypoint`` ports by changing the import.
"""

from headwater._entrypoints import (
    is_entrypoint_async,
    load_flow_arguments_from_entrypoint,
    load_flow_from_entrypoint,
    load_flows_from_script,
    load_placeholder_flow,
    safe_load_flow_from_entrypoint,
    select_flow,
)
from headwater._flows import Flow, NotSet, flow, serve
from headwater._serve.loading import load_flow_from_flow_run

__all__ = [
    "Flow",
    "NotSet",
    "flow",
    "is_entrypoint_async",
    "load_flow_arguments_from_entrypoint",
    "load_flow_from_entrypoint",
    "load_flow_from_flow_run",
    "load_flows_from_script",
    "load_placeholder_flow",
    "safe_load_flow_from_entrypoint",
    "select_flow",
    "serve",
]

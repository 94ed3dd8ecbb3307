"""The public context module, mirroring ``prefect.context``: what a running flow or task knows.

``from prefect.context import get_run_context, FlowRunContext`` ports by changing the import.
"""

from headwater._context import FlowRunContext, TaskRunContext, get_run_context, tags

__all__ = ["FlowRunContext", "TaskRunContext", "get_run_context", "tags"]

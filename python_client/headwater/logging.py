"""The public logging module, mirroring ``prefect.logging``: the run logger.

``from prefect.logging import get_run_logger`` ports by changing the import. (Inside the
package, ``import logging`` still means the standard library: imports are absolute.)
"""

from headwater._logging import get_run_logger

__all__ = ["get_run_logger"]

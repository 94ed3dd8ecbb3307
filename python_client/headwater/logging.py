"""The public logging module, mirroring ``prefect.logging``: the run logger, a way to silence it
in tests (``disable_run_logger``), and loggers under ``headwater`` (``get_logger``).

``from prefect.logging import get_run_logger`` ports by changing the import. (Inside the
package, ``import logging`` still means the standard library: imports are absolute.)
"""

from headwater._logging import disable_run_logger, get_logger, get_run_logger

__all__ = ["disable_run_logger", "get_logger", "get_run_logger"]

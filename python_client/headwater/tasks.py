"""The public tasks module, mirroring ``prefect.tasks``.

Everything here is also reachable from where it is defined; this module exists so code written
as ``from prefect.tasks import task, exponential_backoff, task_input_hash`` ports by changing
the import.
"""

from headwater._tasks import Task, exponential_backoff, task, task_input_hash

__all__ = ["Task", "exponential_backoff", "task", "task_input_hash"]

"""Runner helpers named as Prefect's ``prefect.runner`` is: see `headwater.runner.storage`."""

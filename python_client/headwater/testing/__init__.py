"""Helpers for testing flows and tasks, mirroring ``prefect.testing`` (see `utilities`)."""

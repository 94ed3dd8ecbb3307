"""Helpers Prefect keeps under ``prefect.utilities``, at the same import paths."""

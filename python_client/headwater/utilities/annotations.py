"""Argument wrappers for task calls, at Prefect's path ``prefect.utilities.annotations``."""

from headwater._annotations import BaseAnnotation, allow_failure, quote, unmapped

__all__ = ["BaseAnnotation", "allow_failure", "quote", "unmapped"]

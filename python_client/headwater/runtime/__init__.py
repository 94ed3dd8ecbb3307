"""Runtime information about the current run, mirroring ``prefect.runtime``.

``from prefect.runtime import flow_run, task_run`` ports by changing the import: each module's
attributes (``flow_run.id``, ``task_run.name``, ...) describe the run the code is in, read
when accessed, and have empty defaults outside a run, so code using them also runs outside a
flow. ``HEADWATER__RUNTIME__FLOW_RUN__ID=...`` (and likewise for any attribute) overrides a
value, for testing code that reads it.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["flow_run", "task_run"]


def from_environment(module: str, name: str, default: Any) -> Any:
    """The override for ``module.name`` in the environment, cast like ``default``, or default.

    Raises:
        ValueError: The override cannot be read as the attribute's type.
    """
    variable = f"HEADWATER__RUNTIME__{module.upper()}__{name.upper()}"
    raw = os.environ.get(variable)
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{variable}={raw!r} is not an integer.") from None
    if isinstance(default, list):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(default, dict):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{variable} is not a JSON object: {exc}.") from None
        if not isinstance(value, dict):
            raise ValueError(f"{variable} must be a JSON object, e.g. '{{\"x\": 1}}'.")
        return value
    return raw


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What a run's process gets from its job variables: ``env`` and ``working_dir``.

A deployment's ``job_variables`` are laid over its work pool's base job template, and a run's
own (``run_deployment(job_variables=...)``) over the deployment's, as with Prefect's process
worker: ``env`` (a mapping; a value of None removes the variable) is merged key by key over the
runner's own environment, and ``working_dir`` is where the run's process starts (the
deployment's code directory otherwise). The template is either a flat object of
defaults (``{"env": {...}}``) or Prefect's shape, whose ``variables.properties.*.default`` are
the defaults. Other variables (Prefect's ``command``, ``labels``, ``stream_output``) are ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "PoolTemplates", "job_for"]

#: How long a pool's template is reused before it is read again (it rarely changes).
TEMPLATE_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class Job:
    """How to start one run's process.

    Attributes:
        env: Variables to set (str) or remove (None) in the process's environment.
        working_dir: Where the process starts; None means the deployment's code directory.
    """

    env: dict[str, str | None] = field(default_factory=dict)
    working_dir: str | None = None

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this job's variables set and removed."""
        merged = dict(base)
        for name, value in self.env.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return merged


def template_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    """The job variables a pool's base job template gives by default."""
    variables = template.get("variables")
    if isinstance(variables, Mapping) and isinstance(variables.get("properties"), Mapping):
        return {
            name: spec["default"]
            for name, spec in variables["properties"].items()
            if isinstance(spec, Mapping) and "default" in spec
        }
    return {name: value for name, value in template.items() if name != "job_configuration"}


def job_for(
    job_variables: Mapping[str, Any],
    template: Mapping[str, Any] | None = None,
    run_variables: Mapping[str, Any] | None = None,
) -> Job:
    """The job of a run whose deployment has ``job_variables``, in a pool with ``template``,
    created with ``run_variables`` of its own.

    Raises:
        ValueError: ``env`` is not a mapping, or ``working_dir`` not a string.
    """
    layers = (template_defaults(template or {}), job_variables, run_variables or {})
    env: dict[str, str | None] = {}
    working_dir = None
    for layer in layers:
        source = layer.get("env")
        if source is not None:
            if not isinstance(source, Mapping):
                raise ValueError(
                    f"job variable 'env' must be an object of strings, not {source!r}."
                )
            env.update({str(k): None if v is None else str(v) for k, v in source.items()})
        working_dir = layer.get("working_dir", working_dir)
    if working_dir is not None and not isinstance(working_dir, str):
        raise ValueError(f"job variable 'working_dir' must be a path, not {working_dir!r}.")
    return Job(env=env, working_dir=str(Path(working_dir).resolve()) if working_dir else None)


class PoolTemplates:
    """Work pools' base job templates, read through the service and kept a few seconds."""

    def __init__(self, address: str | None) -> None:
        self._address = address
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, pool_name: str) -> dict[str, Any]:
        """The pool's template ({} when it has none).

        Raises:
            ObjectNotFound: The pool was deleted.
        """
        from headwater.client import get_client

        with self._lock:
            known = self._known.get(pool_name)
        if known is not None and time.monotonic() - known[0] < TEMPLATE_TTL_SECONDS:
            return known[1]
        with get_client(sync_client=True, address=self._address) as client:
            template = dict(client.get_work_pool(pool_name).base_job_template)
        with self._lock:
            self._known[pool_name] = (time.monotonic(), template)
        return template

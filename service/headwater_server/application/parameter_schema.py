"""A deployment's parameter JSON Schema: checking the schema, and runs' parameters against it.

The schema is generated from the flow's signature by the SDK (as Prefect's is) and stored with
the deployment; with ``enforce_parameter_schema`` on, every run's parameters (the deployment's
defaults with the run's merged over them) must satisfy it, so a typo in a scheduled or remote
run is refused when the run is asked for, not when a worker starts it. An error names the
parameter: ``parameters_json.limit``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from headwater_server import errors

__all__ = ["check_schema", "merged_parameters", "violations"]

#: Longer descriptions are cut: they may quote the whole offending value.
_DESCRIPTION_CHARACTERS = 300


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the schema's draft (``$schema``), 2020-12 when it names none.

    jsonschema is imported here, on first use: it costs the server ~75 ms at start-up, which
    every embedded service (started by the first flow call) would pay.
    """
    from jsonschema import validators

    return validators.validator_for(schema, default=validators.Draft202012Validator)


def check_schema(field: str, schema_text: str) -> dict[str, Any] | None:
    """Parse and check a parameter schema (None for ""); INVALID_ARGUMENT names what is wrong."""
    if not schema_text:
        return None
    from jsonschema import exceptions as schema_errors

    schema: dict[str, Any] = json.loads(schema_text)  # checked as a JSON object by the caller
    try:
        _validator_class(schema).check_schema(schema)
    except schema_errors.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise errors.invalid_argument(
            field,
            f"is not a valid JSON Schema{f' at {where!r}' if where else ''}: {_short(exc.message)}",
        ) from None
    return schema


def violations(
    schema: dict[str, Any], parameters: dict[str, Any], *, partial: bool = False
) -> Iterable[tuple[str, str]]:
    """``(path, description)`` for each way ``parameters`` break ``schema``, path first.

    The path is the dotted place of the offending value ("limit", "config.retries"); for a
    missing required parameter it is that parameter's name. ``partial`` skips missing required
    parameters, for a deployment's defaults (a run may supply them).
    """
    found = []
    for error in _validator_class(schema)(schema).iter_errors(parameters):
        path = [str(part) for part in error.absolute_path]
        if error.validator == "required":
            if partial:
                continue
            instance = error.instance if isinstance(error.instance, dict) else {}
            missing = [name for name in error.validator_value if name not in instance]
            path.append(str(missing[0]) if missing else "")
        found.append((".".join(part for part in path if part), _short(error.message)))
    return sorted(found)


def merged_parameters(
    field: str,
    defaults_json: str,
    run_json: str,
    schema_text: str,
    enforce: bool,
) -> str:
    """A run's parameters: ``run_json`` merged over ``defaults_json``, checked against the schema
    when ``enforce`` is on. Both texts are checked JSON objects (or empty).

    Raises:
        ServiceError: INVALID_ARGUMENT naming ``field.<parameter>`` for each violation.
    """
    parameters: dict[str, Any] = json.loads(defaults_json or "{}")
    parameters.update(json.loads(run_json or "{}"))
    if enforce and schema_text:
        problems = [
            (
                f"{field}.{path}" if path else field,
                f"{description} (the deployment's parameter schema refuses it; fix the value, "
                "or turn enforce_parameter_schema off).",
            )
            for path, description in violations(json.loads(schema_text), parameters)
        ]
        if problems:
            raise errors.invalid_arguments(problems)
    return json.dumps(parameters, ensure_ascii=False)


def _short(text: str) -> str:
    if len(text) <= _DESCRIPTION_CHARACTERS:
        return text
    return text[: _DESCRIPTION_CHARACTERS - 3] + "..."

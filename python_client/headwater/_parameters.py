"""Flow parameters: binding call arguments, validating them, and turning them into JSON.

A call ``my_flow(1, y="2")`` becomes the parameter dict ``{"x": 1, "y": "2"}`` (what the
service stores and shows), is validated and coerced against the annotations with pydantic
(``{"x": 1, "y": 2}``), and becomes ``args``/``kwargs`` again to call the function.

pydantic is imported inside the functions that need it, so ``import headwater`` stays fast; the
per-function validators and schemas are built once and cached.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from headwater.exceptions import ParameterBindError, ParameterTypeError

__all__ = [
    "BOUND_SELF_ATTRIBUTE",
    "get_call_parameters",
    "jsonable",
    "parameter_schema",
    "parameters_to_args_kwargs",
    "validate_parameters",
]

#: The attribute a flow's function carries when the flow was accessed through an instance
#: (``obj.my_flow``): the instance, passed as the first argument.
BOUND_SELF_ATTRIBUTE = "__headwater_self__"

#: Points from a per-instance copy of a method back to the function it was copied from, so the
#: caches below are shared by every instance.
ORIGIN_ATTRIBUTE = "__headwater_origin__"

_signatures: weakref.WeakKeyDictionary[Any, inspect.Signature] = weakref.WeakKeyDictionary()
#: Per function: its parameter names when every one is positional-or-keyword without a default
#: (the usual task), else None; such a call binds by position without `inspect`.
_plain_names: weakref.WeakKeyDictionary[Any, tuple[str, ...] | None] = weakref.WeakKeyDictionary()
_validators: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_schemas: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _origin(fn: Callable[..., Any]) -> Callable[..., Any]:
    return getattr(fn, ORIGIN_ATTRIBUTE, fn)  # type: ignore[no-any-return,unused-ignore]


def signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature(fn)``, cached: the engine binds parameters on every run."""
    key = _origin(fn)
    try:
        return _signatures[key]
    except (KeyError, TypeError):
        pass
    signature = inspect.signature(fn)
    with contextlib.suppress(TypeError):  # not weak-referenceable: skip the cache
        _signatures[key] = signature
    return signature


def _plain_parameter_names(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """``fn``'s parameter names if all are positional-or-keyword without defaults (cached)."""
    key = _origin(fn)
    try:
        return _plain_names[key]
    except (KeyError, TypeError):
        pass
    try:
        parameters = signature_of(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    names: tuple[str, ...] | None = tuple(p.name for p in parameters)
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD or p.default is not p.empty for p in parameters):
        names = None
    with contextlib.suppress(TypeError):
        _plain_names[key] = names
    return names


def get_call_parameters(
    fn: Callable[..., Any],
    call_args: tuple[Any, ...],
    call_kwargs: dict[str, Any],
    apply_defaults: bool = True,
) -> dict[str, Any]:
    """Bind a call's arguments to ``fn``'s parameter names, as Python would.

    Defaults are filled in, ``*args`` collects into a tuple under its own name and ``**kwargs``
    into a dict. When ``fn`` was bound to an instance (a method used as a flow), the instance
    is passed as the first argument, so ``self`` appears among the parameters.

    Raises:
        ParameterBindError: The arguments do not fit the signature (also a `TypeError`).
    """
    if hasattr(fn, BOUND_SELF_ATTRIBUTE):
        call_args = (getattr(fn, BOUND_SELF_ATTRIBUTE), *call_args)
    elif not call_kwargs:
        names = _plain_parameter_names(fn)
        if names is not None and len(names) == len(call_args):
            return dict(zip(names, call_args, strict=True))
    signature = signature_of(fn)
    try:
        bound = signature.bind(*call_args, **call_kwargs)
    except TypeError as exc:
        raise ParameterBindError.from_bind_failure(
            fn, exc, call_args, call_kwargs, signature
        ) from None
    if apply_defaults:
        bound.apply_defaults()
    return dict(bound.arguments)


def parameters_to_args_kwargs(
    fn: Callable[..., Any], parameters: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn a parameter dict back into the ``args`` and ``kwargs`` that call ``fn``.

    Positional-only parameters and ``*args`` go to ``args``; everything else is passed in the
    way that suits its kind.

    Raises:
        ParameterBindError: ``parameters`` names a parameter ``fn`` does not have.
    """
    signature = signature_of(fn)
    unknown = [name for name in parameters if name not in signature.parameters]
    if unknown:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ParameterBindError(
            f"{name!r} has no parameter(s) {unknown}; its parameters are "
            f"{list(signature.parameters)}. Remove the unknown names or fix their spelling."
        )
    bound = signature.bind_partial()
    bound.arguments = dict(parameters)
    return bound.args, bound.kwargs


def jsonable(value: Any) -> Any:
    """Convert ``value`` to JSON-compatible Python (dicts, lists, str, int, float, bool, None).

    Integers stay exact ints at any size; dates, UUIDs, sets, dataclasses and pydantic models
    are converted the way pydantic serializes them.

    Raises:
        ValueError: ``value`` contains something with no JSON form.
    """
    if value is None or type(value) in (str, int, float, bool):
        return value
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def _is_method_like(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` was defined in a class body, so its first parameter is the instance."""
    parts = getattr(_origin(fn), "__qualname__", "").split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"


def _annotations(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Resolved annotations per parameter; ones that cannot be resolved count as Any.

    Forward references to names defined later, or inside an enclosing function, cannot be
    evaluated; treating them as Any beats refusing to run the flow.
    """
    target = _origin(fn)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:
        hints = {}
        namespace = getattr(inspect.unwrap(target), "__globals__", {})
        for name, param in signature.parameters.items():
            annotation = param.annotation
            if isinstance(annotation, str):
                try:
                    annotation = eval(annotation, dict(namespace))
                except Exception:
                    annotation = Any
            hints[name] = annotation
    resolved = {}
    for name, param in signature.parameters.items():
        annotation = hints.get(name, param.annotation)
        if annotation is inspect.Parameter.empty or isinstance(annotation, str):
            annotation = Any
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            annotation = tuple[annotation, ...]  # type: ignore[valid-type]
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            annotation = dict[str, annotation]  # type: ignore[valid-type]
        resolved[name] = annotation
    return resolved


def _validator(fn: Callable[..., Any]) -> Any:
    """A cached pydantic TypeAdapter over a TypedDict of ``fn``'s parameters.

    A TypedDict (not a generated model) accepts any parameter name, including ones that would
    clash with BaseModel attributes such as ``json`` or ``schema``, and its output holds only
    the keys that were given, as the parameter dict does.
    """
    key = _origin(fn)
    try:
        return _validators[key]
    except (KeyError, TypeError):
        pass
    from typing import NotRequired

    signature = signature_of(fn)
    fields: dict[str, Any] = {}
    for name, annotation in _annotations(fn, signature).items():
        param = signature.parameters[name]
        optional = param.default is not inspect.Parameter.empty or param.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        fields[name] = NotRequired[annotation] if optional else annotation
    adapter = _typed_dict_adapter(f"{getattr(fn, '__name__', 'flow')}_parameters", fields)
    with contextlib.suppress(TypeError):
        _validators[key] = adapter
    return adapter


def _typed_dict_adapter(name: str, fields: dict[str, Any]) -> Any:
    """A TypeAdapter over a TypedDict of ``fields``, allowing arbitrary classes.

    If pydantic cannot build a schema for some annotation (an unresolvable forward reference
    inside a generic, say), that field is validated as Any instead: a flow should still run
    when one of its annotations is beyond pydantic.
    """
    from typing import NotRequired

    from pydantic import ConfigDict, TypeAdapter

    def build(fields: dict[str, Any], title: str) -> Any:
        typed_dict: Any = _typed_dict_factory()(title, fields)
        typed_dict.__pydantic_config__ = ConfigDict(arbitrary_types_allowed=True)
        adapter = TypeAdapter(typed_dict)
        if not adapter.pydantic_complete:
            # Unresolved forward references leave a placeholder that fails on first use.
            raise TypeError(f"{title}: the schema is incomplete")
        return adapter

    try:
        return build(fields, name)
    except Exception:
        usable: dict[str, Any] = {}
        for field_name, annotation in fields.items():
            try:
                build({"value": annotation}, "Check")
            except Exception:
                optional = getattr(annotation, "__origin__", None) is NotRequired
                annotation = NotRequired[Any] if optional else Any
            usable[field_name] = annotation
        return build(usable, name)


def _typed_dict_factory() -> Any:
    """``typing_extensions.TypedDict``, which pydantic requires before Python 3.12.

    Returned as ``Any`` because the dict of fields is only known at run time.
    """
    from typing_extensions import TypedDict

    return TypedDict


RESERVED_VALIDATION_NAMES = frozenset(
    {"v__args", "v__kwargs", "v__positional_only", "v__duplicate_kwargs"}
)


def check_validation_compatible(fn: Callable[..., Any]) -> None:
    """Raise at declaration time if validation could not handle ``fn``'s parameter names.

    Prefect's validator reserves four ``v__*`` names; a flow using them must switch validation
    off, here too, so a flow that works in one works in the other. This check is cheap and does
    not import pydantic; the validator itself is built on first use.

    Raises:
        ValueError: ``fn`` uses a reserved name.
    """
    names = signature_of(fn).parameters.keys() & RESERVED_VALIDATION_NAMES
    if names:
        raise ValueError(
            "Flow function is not compatible with `validate_parameters`. "
            f"The parameter name(s) {sorted(names)} are reserved by the validator. "
            "Disable validation with @flow(validate_parameters=False) or rename the "
            "parameter(s)."
        )


def validate_parameters(
    fn: Callable[..., Any], parameters: Mapping[str, Any], flow_name: str | None = None
) -> dict[str, Any]:
    """Validate and coerce ``parameters`` against ``fn``'s annotations with pydantic.

    ``"5"`` becomes ``5`` for ``x: int``; unannotated parameters pass through untouched.

    Returns:
        A new parameter dict holding the coerced values of the given parameters.

    Raises:
        ParameterTypeError: A value does not fit its annotation, a required parameter is
            missing, or an unknown one is given; the message lists every problem.
    """
    signature = signature_of(fn)
    unknown = [name for name in parameters if name not in signature.parameters]
    if unknown:
        raise ParameterTypeError.from_messages(
            [
                f"{name}: unexpected parameter; the flow's parameters are "
                f"{list(signature.parameters)}"
                for name in unknown
            ],
            flow_name=flow_name,
        )
    if not signature.parameters:
        # Nothing to validate, so no pydantic: importing it and building a validator is about
        # 0.1 s, which a process running a parameterless flow would pay for nothing.
        return {}
    from pydantic import ValidationError

    try:
        return dict(_validator(fn).validate_python(dict(parameters)))
    except ValidationError as exc:
        raise ParameterTypeError.from_validation_error(exc, flow_name=flow_name) from None


def _lenient_json_schema_generator() -> Any:
    from pydantic.json_schema import GenerateJsonSchema

    class LenientSchema(GenerateJsonSchema):
        """Describes arbitrary Python types as 'any value' instead of refusing the schema."""

        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> Any:
            return {}

    return LenientSchema


def parameter_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of ``fn``'s parameters, as deployments and UIs need it (cached).

    The shape follows Prefect's: ``{"title": "Parameters", "type": "object", "properties":
    {...}, "required": [...], "definitions": {...}}``, each property carrying a ``title``, a
    ``position`` and, when JSON-able, its ``default``. The instance parameter of a method is
    left out, since callers never pass it.
    """
    key = _origin(fn)
    try:
        return _copy_schema(_schemas[key])
    except (KeyError, TypeError):
        pass
    from typing import NotRequired

    signature = signature_of(fn)
    params = list(signature.parameters.values())
    if params and _is_method_like(fn):
        params = params[1:]
    annotations = _annotations(fn, signature)
    fields = {p.name: NotRequired[annotations[p.name]] for p in params}
    generated = _typed_dict_adapter("Parameters", fields).json_schema(
        ref_template="#/definitions/{model}",
        schema_generator=_lenient_json_schema_generator(),
    )
    raw_properties = generated.get("properties", {})
    properties: dict[str, Any] = {}
    required: list[str] = []
    for position, param in enumerate(params):
        prop = dict(raw_properties.get(param.name, {}))
        prop["title"] = param.name
        prop["position"] = position
        if param.default is not inspect.Parameter.empty:
            with contextlib.suppress(ValueError):
                prop["default"] = jsonable(param.default)
        elif param.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            required.append(param.name)
        properties[param.name] = prop
    schema = {
        "title": "Parameters",
        "type": "object",
        "properties": properties,
        "required": required,
        "definitions": generated.get("$defs", {}),
    }
    with contextlib.suppress(TypeError):
        _schemas[key] = schema
    return _copy_schema(schema)


def _copy_schema(schema: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(schema)

"""Binding call arguments to parameters, validating them, and converting them to JSON."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest
from headwater._parameters import (
    check_validation_compatible,
    get_call_parameters,
    jsonable,
    parameter_schema,
    parameters_to_args_kwargs,
    validate_parameters,
)
from headwater.exceptions import HeadwaterException, ParameterBindError, ParameterTypeError
from pydantic import BaseModel


def simple(a, b=2, *, c=3):  # type: ignore[no-untyped-def]
    return a, b, c


def variadic(a, *args, k=None, **kwargs):  # type: ignore[no-untyped-def]
    return a, args, k, kwargs


def positional_only(a, b, /, c):  # type: ignore[no-untyped-def]
    return a, b, c


class Config(BaseModel):
    """A model used as a parameter type."""

    size: int
    label: str = "x"


def typed(count: int, ratio: float, when: datetime.date, config: Config, tags: list[str]) -> None:
    """A function with several annotated parameters."""


class TestGetCallParameters:
    def test_positional_and_keyword(self) -> None:
        assert get_call_parameters(simple, (1,), {"b": 5}) == {"a": 1, "b": 5, "c": 3}

    def test_defaults_applied(self) -> None:
        assert get_call_parameters(simple, (1,), {}) == {"a": 1, "b": 2, "c": 3}

    def test_defaults_can_be_left_out(self) -> None:
        assert get_call_parameters(simple, (1,), {}, apply_defaults=False) == {"a": 1}

    def test_var_args_and_kwargs_collect_under_their_names(self) -> None:
        parameters = get_call_parameters(variadic, (1, 2, 3), {"k": 4, "z": 5})
        assert parameters == {"a": 1, "args": (2, 3), "k": 4, "kwargs": {"z": 5}}

    def test_empty_var_args_and_kwargs(self) -> None:
        assert get_call_parameters(variadic, (1,), {}) == {
            "a": 1,
            "args": (),
            "k": None,
            "kwargs": {},
        }

    def test_positional_only(self) -> None:
        assert get_call_parameters(positional_only, (1, 2), {"c": 3}) == {"a": 1, "b": 2, "c": 3}

    def test_a_plain_function_binds_by_position_as_inspect_would(self) -> None:
        def plain(a, b):  # type: ignore[no-untyped-def]
            return a, b

        for _ in range(2):  # the second call takes the cached names
            assert get_call_parameters(plain, (1, [2]), {}) == {"a": 1, "b": [2]}
            assert get_call_parameters(plain, (1,), {"b": 2}) == {"a": 1, "b": 2}
            with pytest.raises(ParameterBindError, match="missing a required argument: 'b'"):
                get_call_parameters(plain, (1,), {})
            with pytest.raises(ParameterBindError, match="too many positional arguments"):
                get_call_parameters(plain, (1, 2, 3), {})

    def test_missing_argument_raises_bind_error(self) -> None:
        with pytest.raises(ParameterBindError) as info:
            get_call_parameters(simple, (), {})
        message = str(info.value)
        assert "missing a required argument: 'a'" in message
        assert "simple(a, b=2, *, c=3)" in message
        assert isinstance(info.value, TypeError)
        assert isinstance(info.value, HeadwaterException)

    def test_unexpected_keyword_raises_bind_error(self) -> None:
        with pytest.raises(ParameterBindError, match="unexpected keyword argument 'zzz'"):
            get_call_parameters(simple, (1,), {"zzz": 1})

    def test_too_many_positional_raises_bind_error(self) -> None:
        with pytest.raises(ParameterBindError, match="too many positional arguments"):
            get_call_parameters(simple, (1, 2, 3), {})

    def test_bound_instance_is_passed_first(self) -> None:
        from headwater._flows import _bind_to_instance

        class Thing:
            def method(self, x):  # type: ignore[no-untyped-def]
                return x

        thing = Thing()
        bound = _bind_to_instance(Thing.method, thing)
        assert get_call_parameters(bound, (1,), {}) == {"self": thing, "x": 1}
        assert not hasattr(Thing.method, "__headwater_self__")


class TestParametersToArgsKwargs:
    def test_round_trip_keyword_parameters(self) -> None:
        args, kwargs = parameters_to_args_kwargs(simple, {"a": 1, "b": 2, "c": 3})
        assert simple(*args, **kwargs) == (1, 2, 3)
        assert kwargs == {"c": 3}

    def test_var_args_and_kwargs_are_spread(self) -> None:
        parameters = get_call_parameters(variadic, (1, 2, 3), {"k": 4, "z": 5})
        args, kwargs = parameters_to_args_kwargs(variadic, parameters)
        assert args == (1, 2, 3)
        assert kwargs == {"k": 4, "z": 5}
        assert variadic(*args, **kwargs) == (1, (2, 3), 4, {"z": 5})

    def test_positional_only_go_to_args(self) -> None:
        args, kwargs = parameters_to_args_kwargs(positional_only, {"a": 1, "b": 2, "c": 3})
        assert positional_only(*args, **kwargs) == (1, 2, 3)
        assert args[:2] == (1, 2)

    def test_unknown_parameter_raises(self) -> None:
        with pytest.raises(ParameterBindError, match=r"has no parameter\(s\) \['nope'\]"):
            parameters_to_args_kwargs(simple, {"a": 1, "nope": 2})


class TestValidateParameters:
    def test_coercion(self) -> None:
        validated = validate_parameters(
            typed,
            {
                "count": "5",
                "ratio": "0.5",
                "when": "2026-01-02",
                "config": {"size": "3"},
                "tags": ("a", "b"),
            },
        )
        assert validated == {
            "count": 5,
            "ratio": 0.5,
            "when": datetime.date(2026, 1, 2),
            "config": Config(size=3),
            "tags": ["a", "b"],
        }

    def test_every_problem_is_reported(self) -> None:
        with pytest.raises(ParameterTypeError) as info:
            validate_parameters(
                typed,
                {"count": "many", "ratio": 1, "when": "soon", "config": {}, "tags": []},
                flow_name="typed-flow",
            )
        message = str(info.value)
        assert message.startswith("Flow 'typed-flow' received invalid parameters:")
        assert " - count: Input should be a valid integer" in message
        assert " - when: Input should be a valid date" in message
        assert " - config.size: Field required" in message
        assert "validate_parameters=False" in message

    def test_arbitrary_types_are_checked_by_isinstance(self) -> None:
        class Custom:
            pass

        def uses_custom(value: decimal.Context) -> None: ...

        context = decimal.Context()
        assert validate_parameters(uses_custom, {"value": context})["value"] is context
        with pytest.raises(ParameterTypeError, match="value:"):
            validate_parameters(uses_custom, {"value": Custom()})

    def test_unresolvable_annotation_is_treated_as_any(self) -> None:
        def forward(value: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
            ...

        marker = object()
        assert validate_parameters(forward, {"value": marker})["value"] is marker

    def test_annotation_pydantic_cannot_build_is_treated_as_any(self) -> None:
        def nested_forward(values, count=0):  # type: ignore[no-untyped-def]
            ...

        # A string inside a generic is a forward reference pydantic cannot resolve.
        nested_forward.__annotations__ = {"values": list["Undefined"], "count": int}  # noqa: F821

        validated = validate_parameters(nested_forward, {"values": ("a",), "count": "3"})
        assert validated == {"values": ("a",), "count": 3}
        assert parameter_schema(nested_forward)["properties"]["count"]["type"] == "integer"

    def test_reserved_validator_names(self) -> None:
        def reserved(v__kwargs):  # type: ignore[no-untyped-def]
            ...

        with pytest.raises(ValueError, match="not compatible with `validate_parameters`"):
            check_validation_compatible(reserved)
        check_validation_compatible(simple)  # ordinary names pass


class TestJsonable:
    def test_plain_values_unchanged(self) -> None:
        for value in (None, "s", 1, 1.5, True, 2**100):
            assert jsonable(value) == value

    def test_containers_and_rich_types(self) -> None:
        value = {
            "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
            "items": {1},
            "cfg": Config(size=1),
        }
        assert jsonable(value) == {
            "when": "2026-01-02T03:04:05",
            "items": [1],
            "cfg": {"size": 1, "label": "x"},
        }
        json.dumps(jsonable(value))

    def test_unknown_types_raise_value_error(self) -> None:
        with pytest.raises(ValueError):
            jsonable(object())


class TestParameterSchema:
    def test_typed_function(self) -> None:
        schema = parameter_schema(typed)
        properties = schema["properties"]
        assert list(properties) == ["count", "ratio", "when", "config", "tags"]
        assert properties["count"] == {"title": "count", "type": "integer", "position": 0}
        assert properties["when"]["format"] == "date"
        assert properties["config"]["$ref"] == "#/definitions/Config"
        assert properties["tags"]["type"] == "array"
        assert schema["required"] == ["count", "ratio", "when", "config", "tags"]
        assert schema["definitions"]["Config"]["properties"]["size"]["type"] == "integer"

    def test_defaults_var_args_and_unannotated(self) -> None:
        schema = parameter_schema(variadic)
        assert schema["required"] == ["a"]
        assert schema["properties"]["k"] == {"title": "k", "position": 2, "default": None}
        assert schema["properties"]["args"]["type"] == "array"
        assert schema["properties"]["kwargs"]["type"] == "object"

    def test_arbitrary_types_do_not_break_the_schema(self) -> None:
        def uses_context(value: decimal.Context, other: object = object()) -> None: ...

        schema = parameter_schema(uses_context)
        assert schema["properties"]["value"] == {"title": "value", "position": 0}
        assert "default" not in schema["properties"]["other"]

    def test_schema_is_json(self) -> None:
        json.dumps(parameter_schema(typed))

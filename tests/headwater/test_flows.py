"""The `Flow` class and `@flow` decorator: arguments, defaults and errors as in Prefect 3.

Calling a flow needs the engine and is tested with it; everything here happens at declaration
or on the flow object.
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
from pathlib import Path

import cloudpickle
import pytest
from headwater import Completed, Flow, flow
from headwater._results import LocalFileSystem, PickleSerializer
from headwater.exceptions import (
    InvalidNameError,
    ParameterBindError,
    ParameterTypeError,
    ReservedArgumentError,
)
from headwater.flows import NotSet
from headwater.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel


def add(x: int, y: int = 2) -> int:
    """Add two numbers.

    More text.
    """
    return x + y


class Point(BaseModel):
    """A model parameter; module level, so string annotations can find it."""

    x: int
    y: int


def hook(flow_obj: object, flow_run: object, state: object) -> None:
    """A hook that does nothing."""


def other_hook(flow_obj: object, flow_run: object, state: object) -> None:
    """Another hook."""


class TestDecorator:
    def test_bare_decorator_returns_flow(self) -> None:
        decorated = flow(add)
        assert isinstance(decorated, Flow)
        assert decorated.fn is add

    def test_decorator_with_arguments(self) -> None:
        decorated = flow(name="adder", retries=3)(add)
        assert isinstance(decorated, Flow)
        assert decorated.name == "adder"
        assert decorated.retries == 3

    def test_decorator_syntax(self) -> None:
        @flow
        def my_flow() -> int:
            return 1

        @flow()
        def my_other_flow() -> int:
            return 2

        assert my_flow.name == "my-flow"
        assert my_other_flow.name == "my-other-flow"

    def test_decorator_and_class_share_every_argument_and_default(self) -> None:
        flow_params = inspect.signature(flow).parameters
        class_params = inspect.signature(Flow.__init__).parameters
        decorator_options = {n: p.default for n, p in flow_params.items() if n != "__fn"}
        class_options = {n: p.default for n, p in class_params.items() if n not in ("self", "fn")}
        assert decorator_options == class_options

    @pytest.mark.parametrize("wrapper", [classmethod, staticmethod])
    def test_method_decorators_below_flow_are_refused(self, wrapper: type) -> None:
        with pytest.raises(
            TypeError, match=f"@{wrapper.__name__} should be applied on top of @flow"
        ):
            flow(wrapper(add))

    def test_wraps_function_metadata(self) -> None:
        decorated = flow(add)
        assert decorated.__name__ == "add"
        assert decorated.__doc__ == add.__doc__
        assert decorated.__wrapped__ is add
        assert inspect.signature(decorated) == inspect.signature(add)


class TestDefaults:
    def test_defaults_match_prefect(self) -> None:
        decorated = flow(add)
        assert decorated.version == hashlib.md5(Path(__file__).read_bytes()).hexdigest()
        assert decorated.flow_run_name is None
        assert decorated.retries == 0
        assert decorated.retry_delay_seconds == 0
        assert isinstance(decorated.task_runner, ThreadPoolTaskRunner)
        assert decorated.task_runner.max_workers is None
        assert decorated.timeout_seconds is None
        assert decorated.should_validate_parameters is True
        assert decorated.persist_result is None
        assert decorated.result_storage is None
        assert decorated.result_serializer is None
        assert decorated.cache_result_in_memory is True
        assert decorated.log_prints is None
        for kind in ("completion", "failure", "cancellation", "crashed", "running"):
            assert getattr(decorated, f"on_{kind}_hooks") == []
        assert decorated.isasync is False
        assert decorated.isgenerator is False
        assert decorated.ismethod is False

    def test_each_flow_gets_its_own_default_task_runner(self) -> None:
        assert flow(add).task_runner is not flow(add).task_runner


class TestName:
    def test_inferred_from_function_with_dashes(self) -> None:
        def my_long_flow_name() -> None: ...

        assert flow(my_long_flow_name).name == "my-long-flow-name"

    def test_lambda_becomes_unknown_lambda(self) -> None:
        assert Flow(fn=lambda: None).name == "unknown-lambda"

    def test_explicit_name_kept_as_given(self) -> None:
        assert flow(name="My Flow_1")(add).name == "My Flow_1"

    def test_empty_name_falls_back_to_function(self) -> None:
        assert flow(name="")(add).name == "add"

    @pytest.mark.parametrize("char", ["/", "%", "&", ">", "<"])
    def test_banned_characters_raise_invalid_name(self, char: str) -> None:
        with pytest.raises(InvalidNameError, match="contains an invalid character") as info:
            flow(name=f"bad{char}name")(add)
        assert isinstance(info.value, ValueError)
        assert f"bad{char}name" in str(info.value)

    def test_non_string_name_raises_type_error(self) -> None:
        with pytest.raises(TypeError, match="Expected string for flow parameter 'name'; got int"):
            flow(name=42)(add)  # type: ignore[call-overload]

    def test_callable_name_hints_at_calling_it(self) -> None:
        def get_name() -> str:
            return "x"

        with pytest.raises(TypeError, match="Perhaps you meant to call it"):
            flow(name=get_name)(add)  # type: ignore[call-overload]

    def test_non_callable_name_has_no_hint(self) -> None:
        with pytest.raises(TypeError) as info:
            flow(name=1.5)(add)  # type: ignore[call-overload]
        assert "Perhaps" not in str(info.value)


class TestArgumentValidation:
    def test_fn_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="'fn' must be callable"):
            Flow(fn="not a function")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "hook_name", ["on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running"]
    )
    def test_hooks_must_be_iterable(self, hook_name: str) -> None:
        with pytest.raises(TypeError, match=f"Expected iterable for '{hook_name}'; got function"):
            flow(**{hook_name: hook})(add)

    @pytest.mark.parametrize(
        "hook_name", ["on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running"]
    )
    def test_hooks_must_be_callables(self, hook_name: str) -> None:
        with pytest.raises(
            TypeError, match=f"Expected callables in '{hook_name}'; got str"
        ) as info:
            flow(**{hook_name: [hook, "nope"]})(add)
        assert f"@flow({hook_name}=[hook1, hook2])" in str(info.value)

    def test_hooks_accept_any_iterable(self) -> None:
        decorated = flow(on_completion=(hook, other_hook))(add)
        assert decorated.on_completion_hooks == [hook, other_hook]

    @pytest.mark.parametrize("argument", ["return_state", "wait_for"])
    def test_reserved_argument_names(self, argument: str) -> None:
        namespace: dict[str, object] = {}
        exec(f"def fn({argument}):\n    pass", namespace)
        with pytest.raises(ReservedArgumentError, match=f"'{argument}' is a reserved argument"):
            flow(namespace["fn"])  # type: ignore[call-overload]

    def test_reserved_argument_error_is_a_type_error(self) -> None:
        assert issubclass(ReservedArgumentError, TypeError)

    def test_flow_run_name_accepts_string_and_callable(self) -> None:
        assert flow(flow_run_name="run-{x}")(add).flow_run_name == "run-{x}"
        namer = lambda: "name"  # noqa: E731
        assert flow(flow_run_name=namer)(add).flow_run_name is namer

    def test_flow_run_name_of_other_type_raises(self) -> None:
        with pytest.raises(
            TypeError, match=r"Expected string or callable for 'flow_run_name'; got int instead\."
        ):
            flow(flow_run_name=5)(add)  # type: ignore[call-overload]

    def test_validate_parameters_incompatible_names_raise_value_error(self) -> None:
        def foo(v__args: int) -> None: ...

        with pytest.raises(
            ValueError, match="Flow function is not compatible with `validate_parameters`"
        ):
            Flow(fn=foo)

    def test_incompatible_names_allowed_without_validation(self) -> None:
        def foo(v__args: int) -> None: ...

        assert Flow(fn=foo, validate_parameters=False).should_validate_parameters is False

    def test_declaring_a_flow_does_not_need_pydantic_names_to_be_special(self) -> None:
        def uses_model_words(json: str, schema: int, model_config: dict[str, int]) -> None: ...

        decorated = flow(uses_model_words)
        validated = decorated.validate_parameters(
            {"json": "a", "schema": "3", "model_config": {"k": "1"}}
        )
        assert validated == {"json": "a", "schema": 3, "model_config": {"k": 1}}


class TestOptions:
    def test_version_given_wins(self) -> None:
        assert flow(version="1.2.3")(add).version == "1.2.3"

    def test_version_none_when_source_unreadable(self) -> None:
        namespace: dict[str, object] = {}
        exec(compile("def made_up():\n    pass\n", "/no/such/file.py", "exec"), namespace)
        assert flow(namespace["made_up"]).version is None  # type: ignore[call-overload]

    def test_version_none_for_builtins(self) -> None:
        assert Flow(fn=len, validate_parameters=False).version is None

    def test_description_from_docstring(self) -> None:
        assert flow(add).description == "Add two numbers.\n\nMore text."

    def test_description_given_wins(self) -> None:
        assert flow(description="Mine")(add).description == "Mine"

    def test_timeout_seconds_becomes_float(self) -> None:
        assert flow(timeout_seconds=5)(add).timeout_seconds == 5.0
        assert isinstance(flow(timeout_seconds=5)(add).timeout_seconds, float)

    def test_timeout_seconds_zero_means_none(self) -> None:
        assert flow(timeout_seconds=0)(add).timeout_seconds is None

    def test_retries_and_delay(self) -> None:
        decorated = flow(retries=2, retry_delay_seconds=1.5)(add)
        assert (decorated.retries, decorated.retry_delay_seconds) == (2, 1.5)

    def test_task_runner_class_is_instantiated(self) -> None:
        assert isinstance(flow(task_runner=ThreadPoolTaskRunner)(add).task_runner, TaskRunner)

    def test_task_runner_instance_is_kept(self) -> None:
        runner = ThreadPoolTaskRunner(max_workers=3)
        assert flow(task_runner=runner)(add).task_runner is runner

    def test_log_prints_and_cache_result_in_memory(self) -> None:
        decorated = flow(log_prints=True, cache_result_in_memory=False)(add)
        assert decorated.log_prints is True
        assert decorated.cache_result_in_memory is False

    @pytest.mark.parametrize(
        "options",
        [{"result_storage": "/tmp/results"}, {"result_serializer": "json"}],
    )
    def test_persist_result_turns_on_with_storage_or_serializer(
        self, options: dict[str, object]
    ) -> None:
        assert flow(**options)(add).persist_result is True

    def test_persist_result_false_is_kept_even_with_storage(self) -> None:
        decorated = flow(persist_result=False, result_storage="/tmp/results")(add)
        assert decorated.persist_result is False

    def test_result_storage_accepts_paths_uris_and_objects(self, tmp_path: Path) -> None:
        storage = LocalFileSystem(tmp_path)
        assert flow(result_storage=str(tmp_path))(add).result_storage == str(tmp_path)
        assert flow(result_storage=tmp_path.as_uri())(add).result_storage == tmp_path.as_uri()
        assert flow(result_storage=storage)(add).result_storage is storage

    def test_result_storage_of_wrong_type_raises(self) -> None:
        with pytest.raises(TypeError, match="result_storage must be"):
            flow(result_storage=42)(add)

    def test_result_storage_with_unsupported_scheme_raises(self) -> None:
        with pytest.raises(ValueError, match="'s3' scheme"):
            flow(result_storage="s3://bucket/results")(add)

    @pytest.mark.parametrize("name", ["pickle", "cloudpickle", "json"])
    def test_result_serializer_names(self, name: str) -> None:
        assert flow(result_serializer=name)(add).result_serializer == name

    def test_result_serializer_object(self) -> None:
        serializer = PickleSerializer()
        assert flow(result_serializer=serializer)(add).result_serializer is serializer

    def test_unknown_result_serializer_name_raises(self) -> None:
        with pytest.raises(ValueError, match="Unknown result serializer 'yaml'"):
            flow(result_serializer="yaml")(add)

    def test_result_serializer_without_dumps_loads_raises(self) -> None:
        with pytest.raises(TypeError, match="result_serializer must be"):
            flow(result_serializer=object())(add)


class TestAsyncAndGenerators:
    def test_async_function(self) -> None:
        @flow
        async def coro() -> int:
            return 1

        assert (coro.isasync, coro.isgenerator) == (True, False)

    def test_generator(self) -> None:
        @flow
        def gen():  # type: ignore[no-untyped-def]
            yield 1

        assert (gen.isasync, gen.isgenerator) == (False, True)

    def test_async_generator(self) -> None:
        @flow
        async def agen():  # type: ignore[no-untyped-def]
            yield 1

        assert (agen.isasync, agen.isgenerator) == (True, True)


class TestEntrypoint:
    def test_entrypoint_is_module_and_function(self) -> None:
        assert flow(add)._entrypoint == f"{add.__module__}:add"

    def test_main_module_uses_file_path(self, tmp_path: Path) -> None:
        script = tmp_path / "script.py"
        script.write_text("def main_flow():\n    pass\n")
        namespace: dict[str, object] = {"__name__": "__main__"}
        exec(compile(script.read_text(), str(script), "exec"), namespace)
        decorated = flow(namespace["main_flow"])  # type: ignore[call-overload]
        assert decorated._entrypoint == f"{script}:main_flow"
        assert decorated._storage is None


class TestWithOptions:
    def test_unchanged_options_are_kept(self) -> None:
        original = flow(
            name="orig",
            version="v1",
            retries=2,
            retry_delay_seconds=3,
            description="d",
            flow_run_name="run",
            timeout_seconds=9,
            validate_parameters=False,
            persist_result=True,
            result_storage="/tmp/r",
            result_serializer="json",
            cache_result_in_memory=False,
            log_prints=True,
            on_completion=[hook],
            on_failure=[hook],
            on_cancellation=[hook],
            on_crashed=[hook],
            on_running=[hook],
        )(add)
        copy = original.with_options()
        assert copy is not original
        for attribute in (
            "fn",
            "name",
            "version",
            "retries",
            "retry_delay_seconds",
            "description",
            "flow_run_name",
            "task_runner",
            "timeout_seconds",
            "should_validate_parameters",
            "persist_result",
            "result_storage",
            "result_serializer",
            "cache_result_in_memory",
            "log_prints",
            "on_completion_hooks",
            "on_failure_hooks",
            "on_cancellation_hooks",
            "on_crashed_hooks",
            "on_running_hooks",
            "_entrypoint",
            "_storage",
        ):
            assert getattr(copy, attribute) == getattr(original, attribute), attribute

    def test_changed_options(self) -> None:
        original = flow(add)
        runner = ThreadPoolTaskRunner(max_workers=2)
        copy = original.with_options(
            name="new",
            version="v2",
            retries=4,
            retry_delay_seconds=7,
            description="new description",
            flow_run_name="r-{x}",
            task_runner=runner,
            timeout_seconds=3,
            validate_parameters=False,
            persist_result=True,
            result_storage="/tmp/x",
            result_serializer="pickle",
            cache_result_in_memory=False,
            log_prints=True,
            on_completion=[hook],
            on_failure=[other_hook],
        )
        assert copy.name == "new"
        assert copy.version == "v2"
        assert (copy.retries, copy.retry_delay_seconds) == (4, 7)
        assert copy.description == "new description"
        assert copy.flow_run_name == "r-{x}"
        assert copy.task_runner is runner
        assert copy.timeout_seconds == 3.0
        assert copy.should_validate_parameters is False
        assert copy.persist_result is True
        assert (copy.result_storage, copy.result_serializer) == ("/tmp/x", "pickle")
        assert copy.cache_result_in_memory is False
        assert copy.log_prints is True
        assert copy.on_completion_hooks == [hook]
        assert copy.on_failure_hooks == [other_hook]
        assert original.name == "add" and original.retries == 0

    def test_falsy_values_for_plain_options_mean_unchanged(self) -> None:
        original = flow(retries=3, timeout_seconds=4, validate_parameters=False)(add)
        copy = original.with_options(retries=None, timeout_seconds=None, validate_parameters=None)
        assert (copy.retries, copy.timeout_seconds) == (3, 4.0)
        assert copy.should_validate_parameters is False

    def test_zero_retries_override(self) -> None:
        assert flow(retries=3)(add).with_options(retries=0).retries == 0

    def test_validate_parameters_false_overrides(self) -> None:
        assert flow(add).with_options(validate_parameters=False).should_validate_parameters is False

    def test_not_set_options_accept_explicit_none(self) -> None:
        original = flow(
            persist_result=True, result_storage="/tmp/r", result_serializer="json", log_prints=True
        )(add)
        copy = original.with_options(
            persist_result=None, result_storage=None, result_serializer=None, log_prints=None
        )
        assert copy.persist_result is None
        assert copy.result_storage is None
        assert copy.result_serializer is None
        assert copy.log_prints is None

    def test_persist_result_stays_on_when_only_storage_is_cleared(self) -> None:
        original = flow(result_storage="/tmp/r")(add)
        assert original.with_options(result_storage=None).persist_result is True

    def test_not_set_is_the_default(self) -> None:
        defaults = inspect.signature(Flow.with_options).parameters
        for name in ("persist_result", "result_storage", "result_serializer", "log_prints"):
            assert defaults[name].default is NotSet
        assert repr(NotSet) == "NotSet"
        assert not NotSet
        assert pickle.loads(pickle.dumps(NotSet)) is NotSet

    def test_hook_lists_are_not_shared(self) -> None:
        original = flow(on_completion=[hook])(add)
        copy = original.with_options()
        copy.on_completion(other_hook)
        assert original.on_completion_hooks == [hook]
        assert copy.on_completion_hooks == [hook, other_hook]

    def test_new_name_is_validated(self) -> None:
        with pytest.raises(InvalidNameError):
            flow(add).with_options(name="a/b")


class TestHookDecorators:
    @pytest.mark.parametrize(
        "kind", ["completion", "failure", "cancellation", "crashed", "running"]
    )
    def test_decorator_registers_and_returns_hook(self, kind: str) -> None:
        decorated = flow(add)
        register = getattr(decorated, f"on_{kind}")

        @register
        def my_hook(flow_obj: object, flow_run: object, state: object) -> None: ...

        assert getattr(decorated, f"on_{kind}_hooks") == [my_hook]
        assert callable(my_hook) and not isinstance(my_hook, Flow)

    def test_decorator_appends_after_argument_hooks(self) -> None:
        decorated = flow(on_failure=[hook])(add)
        decorated.on_failure(other_hook)
        assert decorated.on_failure_hooks == [hook, other_hook]


class TestValidateParameters:
    def test_coerces_strings_to_annotated_types(self) -> None:
        assert flow(add).validate_parameters({"x": "5", "y": "6"}) == {"x": 5, "y": 6}

    def test_unannotated_values_pass_through_unchanged(self) -> None:
        marker = object()

        @flow
        def untyped(a, b=None):  # type: ignore[no-untyped-def]
            return a

        validated = untyped.validate_parameters({"a": marker, "b": "text"})
        assert validated["a"] is marker and validated["b"] == "text"

    def test_pydantic_models_are_built_from_dicts(self) -> None:
        def draw(point: Point) -> None: ...

        validated = flow(draw).validate_parameters({"point": {"x": "1", "y": 2}})
        assert validated["point"] == Point(x=1, y=2)

    def test_lists_of_types(self) -> None:
        def total(values: list[int]) -> int:
            return sum(values)

        assert flow(total).validate_parameters({"values": ["1", 2]}) == {"values": [1, 2]}

    def test_each_bad_field_is_listed(self) -> None:
        with pytest.raises(ParameterTypeError) as info:
            flow(add).validate_parameters({"x": "five", "y": "six"})
        message = str(info.value)
        assert "Flow 'add' received invalid parameters" in message
        assert " - x: Input should be a valid integer" in message
        assert " - y: Input should be a valid integer" in message
        assert "'five'" in message

    def test_missing_required_parameter(self) -> None:
        with pytest.raises(ParameterTypeError, match="x: Field required"):
            flow(add).validate_parameters({"y": 1})

    def test_unknown_parameter(self) -> None:
        with pytest.raises(ParameterTypeError, match="z: unexpected parameter"):
            flow(add).validate_parameters({"x": 1, "z": 3})

    def test_only_given_parameters_are_returned(self) -> None:
        assert flow(add).validate_parameters({"x": 1}) == {"x": 1}

    def test_error_is_picklable(self) -> None:
        with pytest.raises(ParameterTypeError) as info:
            flow(add).validate_parameters({"x": "five"})
        restored = pickle.loads(pickle.dumps(info.value))
        assert str(restored) == str(info.value)

    def test_var_args_and_kwargs(self) -> None:
        def many(*args: int, **kwargs: float) -> None: ...

        validated = flow(many).validate_parameters({"args": ["1", "2"], "kwargs": {"a": "1.5"}})
        assert validated == {"args": (1, 2), "kwargs": {"a": 1.5}}


class TestSerializeParameters:
    def test_json_types_kept_and_ints_exact(self) -> None:
        big = 2**70
        serialized = flow(add).serialize_parameters(
            {"x": big, "y": 1.5, "s": "text", "n": None, "b": True, "l": [1, {"k": 2}]}
        )
        assert serialized == {
            "x": big,
            "y": 1.5,
            "s": "text",
            "n": None,
            "b": True,
            "l": [1, {"k": 2}],
        }
        assert type(serialized["x"]) is int

    def test_rich_values_become_json(self) -> None:
        import datetime
        import uuid

        value_id = uuid.UUID(int=1)
        serialized = flow(add).serialize_parameters(
            {
                "when": datetime.date(2026, 1, 2),
                "id": value_id,
                "p": Point(x=1, y=2),
                "t": (1, 2),
            }
        )
        assert serialized == {
            "when": "2026-01-02",
            "id": str(value_id),
            "p": {"x": 1, "y": 2},
            "t": [1, 2],
        }

    def test_unserializable_values_become_type_name(self) -> None:
        class Opaque:
            pass

        serialized = flow(add).serialize_parameters({"x": Opaque(), "y": 1})
        assert serialized == {"x": "<Opaque>", "y": 1}

    def test_states_are_not_converted(self) -> None:
        serialized = flow(add).serialize_parameters({"x": Completed(data=1)})
        assert serialized == {"x": "<State>"}


class Greeter:
    """A class with flows as methods, as Prefect allows."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @flow
    def greet(self, name: str) -> str:
        return f"{self.greeting} {name}"

    @flow
    async def agreet(self, name: str) -> str:
        return f"{self.greeting} {name}"

    @classmethod
    @flow
    def build(cls, greeting: str) -> Greeter:
        return cls(greeting)

    @staticmethod
    @flow
    def shout(text: str) -> str:
        return text.upper()


class TestMethods:
    def test_class_access_returns_the_flow_itself(self) -> None:
        flow_obj = Greeter.__dict__["greet"]
        assert Greeter.greet is flow_obj
        assert Greeter.greet.ismethod is False

    def test_instance_access_binds_a_copy(self) -> None:
        hello = Greeter("hello")
        bound = hello.greet
        assert isinstance(bound, Flow)
        assert bound is not Greeter.__dict__["greet"]
        assert bound.ismethod is True
        assert bound.name == "greet"

    def test_instances_do_not_share_self(self) -> None:
        hello, hi = Greeter("hello"), Greeter("hi")
        bound_hello, bound_hi = hello.greet, hi.greet
        assert bound_hello.fn.__headwater_self__ is hello  # type: ignore[attr-defined]
        assert bound_hi.fn.__headwater_self__ is hi  # type: ignore[attr-defined]
        # The function shared by the class is never modified.
        assert not hasattr(Greeter.__dict__["greet"].fn, "__headwater_self__")

    def test_bound_call_parameters_include_self(self) -> None:
        from headwater._parameters import get_call_parameters

        hello = Greeter("hello")
        bound = hello.greet
        parameters = get_call_parameters(bound.fn, ("world",), {})
        assert parameters == {"self": hello, "name": "world"}
        assert bound.fn(**parameters) == "hello world"

    def test_serialize_skips_bound_self(self) -> None:
        hello = Greeter("hello")
        bound = hello.greet
        assert bound.serialize_parameters({"self": hello, "name": "w"}) == {"name": "w"}

    def test_validate_keeps_bound_self(self) -> None:
        hello = Greeter("hello")
        validated = hello.greet.validate_parameters({"self": hello, "name": "w"})
        assert validated["self"] is hello

    def test_bound_async_method_stays_async(self) -> None:
        bound = Greeter("hi").agreet
        assert bound.isasync is True
        assert inspect.iscoroutinefunction(bound.fn)

    def test_classmethod_on_top_binds_the_class(self) -> None:
        bound = Greeter.build
        assert isinstance(bound, Flow)
        assert bound.ismethod is True
        assert bound.fn.__headwater_self__ is Greeter  # type: ignore[attr-defined]

    def test_staticmethod_on_top_is_a_plain_flow(self) -> None:
        assert isinstance(Greeter.shout, Flow)
        assert Greeter.shout.ismethod is False
        assert Greeter("x").shout.ismethod is False

    def test_with_options_keeps_binding(self) -> None:
        hello = Greeter("hello")
        renamed = hello.greet.with_options(name="renamed")
        assert renamed.ismethod is True
        assert renamed.fn.__headwater_self__ is hello  # type: ignore[attr-defined]

    def test_parameter_schema_leaves_out_self(self) -> None:
        schema = Greeter("x").greet.parameters
        assert list(schema["properties"]) == ["name"]
        assert schema["required"] == ["name"]


class TestParametersSchema:
    def test_schema_shape(self) -> None:
        schema = flow(add).parameters
        assert schema == {
            "title": "Parameters",
            "type": "object",
            "properties": {
                "x": {"title": "x", "type": "integer", "position": 0},
                "y": {"title": "y", "type": "integer", "position": 1, "default": 2},
            },
            "required": ["x"],
            "definitions": {},
        }

    def test_schema_is_a_copy(self) -> None:
        decorated = flow(add)
        decorated.parameters["properties"].clear()
        assert decorated.parameters["properties"]


class TestCall:
    def test_bad_arguments_fail_before_the_engine(self) -> None:
        # Binding happens first, so a wrong call never reaches (or needs) the engine.
        with pytest.raises(ParameterBindError, match="missing a required argument: 'x'"):
            flow(add)()

    def test_call_signature(self) -> None:
        params = inspect.signature(Flow.__call__).parameters
        assert params["return_state"].default is False
        assert params["return_state"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["wait_for"].default is None


class TestPickling:
    def test_flow_round_trips_through_cloudpickle(self) -> None:
        original = flow(retries=2, on_completion=[hook])(add)
        original.validate_parameters({"x": "1"})  # builds (and caches) the validator
        restored = cloudpickle.loads(cloudpickle.dumps(original))
        assert restored.name == "add" and restored.retries == 2
        assert restored.fn(1) == 3
        assert restored.validate_parameters({"x": "1"}) == {"x": 1}

    def test_flow_of_module_function_pickles(self) -> None:
        restored = pickle.loads(pickle.dumps(flow(add)))
        assert restored.fn is add

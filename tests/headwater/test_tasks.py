"""The `Task` class and `@task` decorator: arguments, defaults and errors as in Prefect 3.

Everything here happens at declaration or on the task object; calling a task runs it on the
engine and is tested there (tests/headwater/_engine/test_task_calls.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from headwater import Task, task
from headwater._results import LocalFileSystem, PickleSerializer
from headwater.cache_policies import (
    DEFAULT,
    INPUTS,
    NO_CACHE,
    NONE,
    TASK_SOURCE,
    CacheKeyFnPolicy,
)
from headwater.exceptions import ParameterBindError, ReservedArgumentError
from headwater.tasks import exponential_backoff


def add(x: int, y: int = 2) -> int:
    """Add two numbers."""
    return x + y


def hook(task_obj: object, task_run: object, state: object) -> None:
    """A hook that does nothing."""


def other_hook(task_obj: object, task_run: object, state: object) -> None:
    """Another hook."""


def key_fn(context: object, inputs: dict[str, Any]) -> str:
    return "fixed"


class TestDecorator:
    def test_bare_decorator_returns_task(self) -> None:
        decorated = task(add)
        assert isinstance(decorated, Task)
        assert decorated.fn is add

    def test_decorator_with_arguments(self) -> None:
        decorated = task(name="adder", retries=3)(add)
        assert isinstance(decorated, Task)
        assert decorated.name == "adder"
        assert decorated.retries == 3

    def test_keeps_function_metadata(self) -> None:
        decorated = task(add)
        assert decorated.__name__ == "add"
        assert decorated.__doc__ == add.__doc__

    @pytest.mark.parametrize("wrapper", [classmethod, staticmethod])
    def test_classmethod_below_task_is_refused(self, wrapper: Any) -> None:
        with pytest.raises(TypeError, match=f"@{wrapper.__name__} should be applied on top"):
            task(wrapper(add))


class TestDefaults:
    def test_defaults(self) -> None:
        t = task(add)
        assert t.name == "add"  # underscores stay, unlike flow names
        assert t.description == "Add two numbers."
        assert t.tags == set()
        assert t.version is None
        assert t.task_run_name is None
        assert t.retries == 0
        assert t.retry_delay_seconds == 0
        assert t.retry_jitter_factor is None
        assert t.retry_condition_fn is None
        assert t.timeout_seconds is None
        assert t.log_prints is None
        assert t.persist_result is None
        assert t.result_storage is None
        assert t.result_serializer is None
        assert t.result_storage_key is None
        assert t.cache_result_in_memory is True
        assert t.cache_policy is DEFAULT
        assert t.cache_key_fn is None
        assert t.cache_expiration is None
        assert t.refresh_cache is None
        assert t.on_completion_hooks == []
        assert t.on_failure_hooks == []
        assert t.on_running_hooks == []
        assert not t.isasync
        assert not t.isgenerator

    def test_name_keeps_underscores(self) -> None:
        def load_rows() -> None:
            pass

        assert task(load_rows).name == "load_rows"

    def test_lambda_name_avoids_characters_the_service_refuses(self) -> None:
        assert task(lambda: 1).name == "unknown-lambda"

    def test_async_and_generator_functions(self) -> None:
        async def coro() -> int:
            return 1

        def gen() -> Any:
            yield 1

        async def agen() -> Any:
            yield 1

        assert task(coro).isasync and not task(coro).isgenerator
        assert task(gen).isgenerator and not task(gen).isasync
        assert task(agen).isasync and task(agen).isgenerator

    def test_tags_become_a_set(self) -> None:
        assert task(tags=["a", "b", "a"])(add).tags == {"a", "b"}

    def test_a_string_is_not_a_list_of_tags(self) -> None:
        with pytest.raises(TypeError, match=r"Write tags=\['etl'\]"):
            task(tags="etl")(add)  # type: ignore[arg-type]

    def test_timeout_is_a_float_and_zero_means_none(self) -> None:
        assert task(timeout_seconds=3)(add).timeout_seconds == 3.0
        assert task(timeout_seconds=0)(add).timeout_seconds is None

    def test_task_key_is_stable_and_tells_tasks_apart(self) -> None:
        def other(x: int) -> int:
            return x

        assert task(add).task_key == task(name="renamed")(add).task_key
        assert task(add).task_key.startswith("add-")
        assert task(add).task_key != task(other).task_key


class TestValidation:
    def test_name_must_be_a_string(self) -> None:
        with pytest.raises(TypeError, match="Expected string for task parameter 'name'; got int"):
            task(name=3)(add)  # type: ignore[arg-type]

    def test_callable_name_hints_at_calling_it(self) -> None:
        with pytest.raises(TypeError, match="Perhaps you meant to call it"):
            task(name=lambda: "x")(add)  # type: ignore[arg-type]

    def test_fn_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="'fn' must be callable"):
            Task(fn=3)  # type: ignore[arg-type]

    @pytest.mark.parametrize("reserved", ["return_state", "wait_for"])
    def test_reserved_argument_names(self, reserved: str) -> None:
        namespace: dict[str, Any] = {}
        exec(f"def fn({reserved}):\n    pass", namespace)
        with pytest.raises(ReservedArgumentError, match=f"'{reserved}' is a reserved argument"):
            task(namespace["fn"])

    def test_task_run_name_type(self) -> None:
        with pytest.raises(
            TypeError, match="Expected string or callable for 'task_run_name'; got int"
        ):
            task(task_run_name=3)(add)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["run-{x}", lambda: "run"])
    def test_task_run_name_template_or_callable(self, name: Any) -> None:
        assert task(task_run_name=name)(add).task_run_name is name

    @pytest.mark.parametrize("hook_name", ["on_completion", "on_failure", "on_running"])
    def test_hooks_must_be_an_iterable(self, hook_name: str) -> None:
        with pytest.raises(TypeError, match=f"Expected iterable for '{hook_name}'") as info:
            task(**{hook_name: hook})(add)
        assert f"@task({hook_name}=[hook1, hook2])" in str(info.value)

    @pytest.mark.parametrize("hook_name", ["on_completion", "on_failure", "on_running"])
    def test_hooks_must_be_callables(self, hook_name: str) -> None:
        with pytest.raises(TypeError, match=f"Expected callables in '{hook_name}'; got int"):
            task(**{hook_name: [hook, 3]})(add)

    def test_retry_delay_type(self) -> None:
        with pytest.raises(TypeError, match="must be an int, float, list or callable"):
            task(retries=1, retry_delay_seconds="5")(add)  # type: ignore[arg-type]

    def test_retry_delay_items_must_be_numbers(self) -> None:
        with pytest.raises(TypeError, match="must be a number of seconds; got str"):
            task(retries=2, retry_delay_seconds=[1, "2"])(add)  # type: ignore[list-item]

    def test_at_most_fifty_retry_delays(self) -> None:
        task(retries=50, retry_delay_seconds=[1] * 50)(add)
        with pytest.raises(ValueError, match="more than 50 retry delays per task; got 51"):
            task(retries=51, retry_delay_seconds=[1] * 51)(add)

    def test_jitter_must_not_be_negative(self) -> None:
        assert task(retry_jitter_factor=0)(add).retry_jitter_factor == 0
        with pytest.raises(ValueError, match="`retry_jitter_factor` must be >= 0"):
            task(retry_jitter_factor=-0.5)(add)

    def test_retry_condition_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="Expected `retry_condition_fn` to be callable, got"):
            task(retry_condition_fn=True)(add)  # type: ignore[arg-type]

    def test_cache_policy_type(self) -> None:
        with pytest.raises(TypeError, match="cache_policy must be a cache policy"):
            task(cache_policy="inputs")(add)  # type: ignore[arg-type]

    def test_cache_key_fn_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="Expected `cache_key_fn` to be callable"):
            task(cache_key_fn="key")(add)  # type: ignore[arg-type]

    def test_cache_expiration_type(self) -> None:
        with pytest.raises(
            TypeError, match=r"Expected a datetime\.timedelta for 'cache_expiration'"
        ):
            task(cache_expiration=60)(add)  # type: ignore[arg-type]

    def test_result_storage_key_type(self) -> None:
        with pytest.raises(TypeError, match="template string for 'result_storage_key'"):
            task(result_storage_key=3)(add)  # type: ignore[arg-type]

    def test_unknown_serializer(self) -> None:
        with pytest.raises(ValueError, match="Unknown result serializer 'yaml'"):
            task(result_serializer="yaml")(add)

    def test_unusable_storage(self) -> None:
        with pytest.raises(TypeError, match="result_storage must be a directory path"):
            task(result_storage=3)(add)


class TestRetries:
    def test_number(self) -> None:
        assert task(retries=2, retry_delay_seconds=1.5)(add).retry_delay_seconds == 1.5

    def test_list(self) -> None:
        t = task(retries=3, retry_delay_seconds=[1, 10, 100])(add)
        assert t.retry_delay_seconds == [1, 10, 100]

    def test_callable_is_called_with_retries(self) -> None:
        seen: list[int] = []

        def delays(retries: int) -> list[float]:
            seen.append(retries)
            return [7.0] * retries

        assert task(retries=4, retry_delay_seconds=delays)(add).retry_delay_seconds == [7.0] * 4
        assert seen == [4]

    def test_exponential_backoff(self) -> None:
        t = task(retries=4, retry_delay_seconds=exponential_backoff(backoff_factor=3))(add)
        assert t.retry_delay_seconds == [3, 6, 12, 24]
        assert exponential_backoff(backoff_factor=0.5)(3) == [0.5, 1.0, 2.0]
        assert exponential_backoff(backoff_factor=1)(0) == []

    def test_a_callable_returning_too_many_delays_is_refused(self) -> None:
        with pytest.raises(ValueError, match="more than 50 retry delays"):
            task(retries=60, retry_delay_seconds=exponential_backoff(1))(add)


class TestCachingOptions:
    def test_an_explicit_policy_turns_persistence_on(self) -> None:
        t = task(cache_policy=INPUTS)(add)
        assert t.cache_policy is INPUTS
        assert t.persist_result is True

    def test_no_cache_leaves_persistence_alone(self) -> None:
        t = task(cache_policy=NO_CACHE)(add)
        assert t.cache_policy is NONE
        assert t.persist_result is None

    @pytest.mark.parametrize(
        "option",
        [
            {"result_storage_key": "k-{x}"},
            {"result_storage": "/tmp/results"},
            {"result_serializer": "json"},
            {"cache_key_fn": key_fn},
        ],
    )
    def test_storage_and_key_options_turn_persistence_on(self, option: dict[str, Any]) -> None:
        assert task(**option)(add).persist_result is True

    def test_explicit_persist_result_wins(self) -> None:
        assert task(cache_policy=INPUTS, persist_result=None)(add).persist_result is True
        assert task(result_serializer="json", persist_result=False)(add).persist_result is False

    def test_cache_key_fn_overrides_the_policy(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="headwater.tasks"):
            t = task(cache_policy=INPUTS, cache_key_fn=key_fn)(add)
        assert t.cache_policy == CacheKeyFnPolicy(cache_key_fn=key_fn)
        assert "`cache_key_fn` will be used" in caplog.text

    def test_cache_key_fn_alone_does_not_warn(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="headwater.tasks"):
            task(cache_key_fn=key_fn)(add)
        assert caplog.text == ""

    def test_persist_result_false_turns_caching_off(self, caplog: pytest.LogCaptureFixture) -> None:
        assert task(persist_result=False)(add).cache_policy is NO_CACHE
        with caplog.at_level(logging.WARNING, logger="headwater.tasks"):
            t = task(persist_result=False, cache_policy=INPUTS)(add)
        assert t.cache_policy is NO_CACHE
        assert "Ignoring `cache_policy`" in caplog.text
        assert task(persist_result=False, cache_policy=None)(add).cache_policy is None

    def test_result_storage_key_alone_caches_by_nothing_else(self) -> None:
        assert task(result_storage_key="out-{x}")(add).cache_policy is None
        assert task(result_storage_key="out-{x}", cache_policy=INPUTS)(add).cache_policy is None

    def test_expiration_and_refresh(self) -> None:
        t = task(cache_expiration=dt.timedelta(hours=1), refresh_cache=True)(add)
        assert t.cache_expiration == dt.timedelta(hours=1)
        assert t.refresh_cache is True


class TestHooks:
    def test_hook_arguments(self) -> None:
        t = task(on_completion=[hook], on_failure=[other_hook], on_running=[hook])(add)
        assert t.on_completion_hooks == [hook]
        assert t.on_failure_hooks == [other_hook]
        assert t.on_running_hooks == [hook]

    def test_decorator_methods_register_and_return_the_hook(self) -> None:
        t = task(add)
        assert t.on_completion(hook) is hook
        assert t.on_failure(other_hook) is other_hook
        assert t.on_running(hook) is hook
        assert t.on_completion_hooks == [hook]
        assert t.on_failure_hooks == [other_hook]
        assert t.on_running_hooks == [hook]

    def test_tasks_have_no_crash_or_cancellation_hooks(self) -> None:
        t = task(add)
        assert tuple(t.on_crashed_hooks) == ()
        assert tuple(t.on_cancellation_hooks) == ()


class TestWithOptions:
    def test_changes_only_what_is_given(self) -> None:
        original = task(
            name="orig",
            tags=["a"],
            retries=2,
            retry_delay_seconds=[1, 2],
            timeout_seconds=5,
            log_prints=True,
            on_completion=[hook],
        )(add)
        changed = original.with_options(name="new", retries=5, retry_delay_seconds=3)
        assert (changed.name, changed.retries, changed.retry_delay_seconds) == ("new", 5, 3)
        assert changed.tags == {"a"}
        assert changed.timeout_seconds == 5.0
        assert changed.log_prints is True
        assert changed.on_completion_hooks == [hook]
        assert (original.name, original.retries) == ("orig", 2)

    def test_none_resets_not_set_options(self) -> None:
        original = task(
            log_prints=True, task_run_name="r-{x}", retry_jitter_factor=1.0, refresh_cache=True
        )(add)
        reset = original.with_options(
            log_prints=None, task_run_name=None, retry_jitter_factor=None, refresh_cache=None
        )
        assert reset.log_prints is None
        assert reset.task_run_name is None
        assert reset.retry_jitter_factor is None
        assert reset.refresh_cache is None

    def test_hook_lists_are_copied(self) -> None:
        original = task(on_failure=[hook])(add)
        copy = original.with_options()
        copy.on_failure(other_hook)
        assert original.on_failure_hooks == [hook]

    def test_default_policy_does_not_turn_persistence_on(self) -> None:
        copy = task(add).with_options(retries=1)
        assert copy.cache_policy is DEFAULT
        assert copy.persist_result is None

    def test_keeps_the_given_policy_and_key_fn(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="headwater.tasks"):
            keyed = task(cache_key_fn=key_fn)(add).with_options(name="k")
        assert keyed.cache_policy == CacheKeyFnPolicy(cache_key_fn=key_fn)
        assert caplog.text == ""
        sourced = task(cache_policy=TASK_SOURCE)(add).with_options(cache_policy=INPUTS)
        assert sourced.cache_policy is INPUTS

    def test_still_validates(self) -> None:
        with pytest.raises(ValueError, match="`retry_jitter_factor` must be >= 0"):
            task(add).with_options(retry_jitter_factor=-1)

    def test_storage_and_serializer(self) -> None:
        storage = LocalFileSystem("/tmp/somewhere")
        changed = task(add).with_options(
            result_storage=storage, result_serializer=PickleSerializer()
        )
        assert changed.result_storage is storage
        assert changed.persist_result is True


class TestEngineView:
    """What the engine reads of a task (its `Runnable` attributes)."""

    def test_run_name_is_task_run_name(self) -> None:
        assert task(task_run_name="t-{x}")(add).run_name == "t-{x}"

    def test_inputs_are_not_validated(self) -> None:
        t = task(add)
        assert t.should_validate_parameters is False
        assert t.validate_parameters({"x": "5"}) == {"x": "5"}

    def test_serialize_parameters(self) -> None:
        class Opaque:
            pass

        serialized = task(add).serialize_parameters({"x": 1, "y": Opaque()})
        assert serialized == {"x": 1, "y": "<Opaque>"}


class TestMethods:
    def test_task_on_an_instance_passes_self(self) -> None:
        class Loader:
            def __init__(self, base: int) -> None:
                self.base = base

            @task
            def load(self, x: int) -> int:
                return self.base + x

        loader = Loader(10)
        bound = loader.load
        assert isinstance(bound, Task)
        assert bound is not Loader.__dict__["load"]
        assert bound.ismethod
        assert bound.fn.__headwater_self__ is loader  # type: ignore[attr-defined]
        assert bound.serialize_parameters({"self": loader, "x": 1}) == {"x": 1}
        assert not Loader.load.ismethod
        assert not hasattr(Loader.__dict__["load"].fn, "__headwater_self__")


class TestCalling:
    """Binding happens before anything reaches the service (runs: _engine/test_task_calls.py)."""

    def test_a_call_that_does_not_fit_says_why(self) -> None:
        with pytest.raises(ParameterBindError):
            task(add)(1, 2, 3)  # type: ignore[call-arg]

"""Cache policies: each computes a stable key from a task run's context, and they compose.

Stable means the same key in another process (checked in a fresh interpreter), so a cache
entry written by one process is found by the next.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from headwater import task
from headwater._context import TaskRunContext
from headwater.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    Inputs,
    RunId,
    TaskSource,
)
from headwater.tasks import task_input_hash

ROOT = Path(__file__).resolve().parents[2]


def double(x: int) -> int:
    return 2 * x


def triple(x: int) -> int:
    return 3 * x


def context(
    fn: Any = double, task_run_id: str = "task-run-1", flow_run_id: str | None = "flow-run-1"
) -> TaskRunContext:
    return TaskRunContext(
        task=task(fn), task_run_id=task_run_id, parameters={}, flow_run_id=flow_run_id
    )


def key(policy: CachePolicy, inputs: dict[str, Any], **kwargs: Any) -> str | None:
    flow_parameters = kwargs.pop("flow_parameters", {})
    return policy.compute_key(context(**kwargs), inputs, flow_parameters)


class TestInputs:
    def test_same_inputs_same_key(self) -> None:
        assert key(INPUTS, {"x": 1, "y": [1, 2]}) == key(INPUTS, {"y": [1, 2], "x": 1})

    def test_different_inputs_different_keys(self) -> None:
        assert key(INPUTS, {"x": 1}) != key(INPUTS, {"x": 2})
        assert key(INPUTS, {"x": 1}) != key(INPUTS, {"y": 1})

    def test_dict_order_does_not_matter(self) -> None:
        assert key(INPUTS, {"d": {"a": 1, "b": 2}}) == key(INPUTS, {"d": {"b": 2, "a": 1}})

    def test_sets_are_keyed_by_their_items(self) -> None:
        assert key(INPUTS, {"s": {"a", "b"}}) == key(INPUTS, {"s": {"b", "a"}})
        assert key(INPUTS, {"s": {1, 2}}) != key(INPUTS, {"s": {1, 3}})
        assert key(INPUTS, {"s": {1, 2}}) != key(INPUTS, {"s": [1, 2]})

    def test_objects_without_json_are_pickled(self) -> None:
        import datetime as dt

        day = dt.date(2026, 11, 30)
        assert key(INPUTS, {"d": day}) == key(INPUTS, {"d": dt.date(2026, 11, 30)})
        assert key(INPUTS, {"d": day}) != key(INPUTS, {"d": dt.date(2026, 12, 1)})

    def test_subtracting_a_name_leaves_it_out(self) -> None:
        policy = INPUTS - "client"
        assert policy == Inputs(exclude=["client"])
        assert key(policy, {"x": 1, "client": "a"}) == key(policy, {"x": 1, "client": "b"})
        assert key(policy, {"x": 1}) != key(policy, {"x": 2})
        chained = INPUTS - "a" - "b"
        assert chained == Inputs(exclude=["a", "b"])

    def test_unhashable_input_is_named(self) -> None:
        with pytest.raises(ValueError) as info:
            key(INPUTS, {"x": 1, "lock": threading.Lock()})
        message = str(info.value)
        assert "input 'lock' of task 'double' (lock)" in message
        assert "INPUTS - 'lock'" in message
        assert "NO_CACHE" in message

    def test_leaving_out_the_unhashable_input_works(self) -> None:
        assert key(INPUTS - "lock", {"x": 1, "lock": threading.Lock()}) is not None

    def test_only_names_can_be_subtracted(self) -> None:
        with pytest.raises(TypeError, match="Only input names"):
            INPUTS - 3  # type: ignore[operator]


class TestOtherPolicies:
    def test_task_source_follows_the_code(self) -> None:
        assert key(TASK_SOURCE, {}, fn=double) == key(TASK_SOURCE, {"x": 5}, fn=double)
        assert key(TASK_SOURCE, {}, fn=double) != key(TASK_SOURCE, {}, fn=triple)

    def test_task_source_without_source_uses_the_code(self) -> None:
        namespace: dict[str, Any] = {}
        exec("def made(x):\n    return x + 1", namespace)
        assert key(TASK_SOURCE, {}, fn=namespace["made"]) is not None

    def test_flow_parameters(self) -> None:
        assert key(FLOW_PARAMETERS, {}) is None
        one = key(FLOW_PARAMETERS, {}, flow_parameters={"day": "mon"})
        assert one == key(FLOW_PARAMETERS, {"x": 1}, flow_parameters={"day": "mon"})
        assert one != key(FLOW_PARAMETERS, {}, flow_parameters={"day": "tue"})

    def test_run_id_is_the_flow_run_or_the_task_run(self) -> None:
        assert key(RUN_ID, {}, flow_run_id="f1") == "f1"
        assert key(RUN_ID, {}, flow_run_id=None, task_run_id="t1") == "t1"

    def test_policies_needing_a_context_give_no_key_without_one(self) -> None:
        assert TaskSource().compute_key(None, {}, {}) is None
        assert RunId().compute_key(None, {}, {}) is None

    def test_none_never_caches(self) -> None:
        assert NO_CACHE is NONE
        assert key(NONE, {"x": 1}) is None

    def test_cache_key_fn_policy(self) -> None:
        seen: list[tuple[Any, dict[str, Any]]] = []

        def key_fn(ctx: Any, inputs: dict[str, Any]) -> str:
            seen.append((ctx, inputs))
            return f"k-{inputs['x']}"

        policy = CachePolicy.from_cache_key_fn(key_fn)
        assert policy == CacheKeyFnPolicy(cache_key_fn=key_fn)
        assert key(policy, {"x": 4}) == "k-4"
        assert seen[0][0].task.name == "double"
        assert CacheKeyFnPolicy().compute_key(None, {}, {}) is None

    def test_the_base_class_computes_nothing(self) -> None:
        with pytest.raises(NotImplementedError, match="CachePolicy does not implement"):
            CachePolicy().compute_key(None, {}, {})


class TestComposition:
    def test_default_is_inputs_source_and_run_id(self) -> None:
        assert DEFAULT == INPUTS + TASK_SOURCE + RUN_ID
        assert isinstance(DEFAULT, CompoundCachePolicy)

    def test_each_part_changes_the_key(self) -> None:
        base = key(DEFAULT, {"x": 1})
        assert base == key(DEFAULT, {"x": 1})
        assert base != key(DEFAULT, {"x": 2})
        assert base != key(DEFAULT, {"x": 1}, fn=triple)
        assert base != key(DEFAULT, {"x": 1}, flow_run_id="flow-run-2")

    def test_nesting_flattens_and_repeats_count_once(self) -> None:
        assert (INPUTS + TASK_SOURCE) + RUN_ID == INPUTS + (TASK_SOURCE + RUN_ID)
        assert DEFAULT + INPUTS == DEFAULT

    def test_adding_none_changes_nothing(self) -> None:
        assert INPUTS + NONE is INPUTS
        assert NONE + INPUTS is INPUTS

    def test_no_key_from_any_part_means_no_key(self) -> None:
        assert key(FLOW_PARAMETERS + NONE + FLOW_PARAMETERS, {}) is None
        assert key(FLOW_PARAMETERS + INPUTS, {"x": 1}) is not None

    def test_subtraction_reaches_the_inputs_part(self) -> None:
        policy = DEFAULT - "client"
        assert policy == Inputs(exclude=["client"]) + TASK_SOURCE + RUN_ID
        assert key(policy, {"x": 1, "client": object()}) == key(policy, {"x": 1, "client": 2})

    def test_subtraction_without_inputs_changes_nothing(self) -> None:
        assert TASK_SOURCE - "x" == TASK_SOURCE
        assert NONE - "x" is NONE

    def test_only_policies_can_be_added(self) -> None:
        with pytest.raises(TypeError):
            INPUTS + "x"  # type: ignore[operator]


def test_task_input_hash_keys_by_the_task_its_code_and_its_inputs() -> None:
    """Prefect's ``cache_key_fn=task_input_hash``: one key per (task, code, inputs); an input
    that cannot be hashed means no caching for that call rather than an error."""
    first = task_input_hash(context(double), {"x": 1})
    assert first is not None
    assert task_input_hash(context(double, task_run_id="another-run"), {"x": 1}) == first
    assert task_input_hash(context(double), {"x": 2}) != first
    assert task_input_hash(context(triple), {"x": 1}) != first
    assert task_input_hash(context(double), {"x": threading.Lock()}) is None


def test_keys_are_the_same_in_another_process() -> None:
    """A cache written by one process is found by the next: keys depend on values only."""
    code = (
        "from headwater import task\n"
        "from headwater._context import TaskRunContext\n"
        "from headwater.cache_policies import DEFAULT, INPUTS, FLOW_PARAMETERS\n"
        "from test_cache_policies import double\n"
        "ctx = TaskRunContext(task=task(double), task_run_id='t', parameters={}, "
        "flow_run_id='flow-run-1')\n"
        "inputs = {'x': 1, 'items': {'b': [1, 2.5, None], 'a': 'text'}, 's': {'q', 'r', 'p'}}\n"
        "print(DEFAULT.compute_key(ctx, inputs, {}))\n"
        "print(FLOW_PARAMETERS.compute_key(ctx, {}, {'day': 'mon'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
        env={
            "PYTHONPATH": f"{ROOT / 'python_client'}:{Path(__file__).parent}",
            "PATH": "",
            # Another string hash seed: a set of strings iterates in another order there.
            "PYTHONHASHSEED": "12345",
        },
    )
    inputs = {"x": 1, "items": {"b": [1, 2.5, None], "a": "text"}, "s": {"q", "r", "p"}}
    ctx = context()
    assert result.stdout.split() == [
        DEFAULT.compute_key(ctx, inputs, {}),
        FLOW_PARAMETERS.compute_key(ctx, {}, {"day": "mon"}),
    ]

"""`headwater.task_runners`: the runner interface, copies, and use as a context manager."""

from __future__ import annotations

from typing import Any

import pytest
from headwater.futures import TaskRunFuture
from headwater.task_runners import TaskRunner, ThreadPoolTaskRunner


def test_task_runner_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        TaskRunner()  # type: ignore[abstract]


def test_a_subclass_only_implements_submit() -> None:
    class Recording(TaskRunner):
        def __init__(self, label: str = "x") -> None:
            super().__init__()
            self.label = label

        def submit(
            self,
            task: Any,
            parameters: dict[str, Any],
            wait_for: Any = None,
            dependencies: Any = None,
        ) -> TaskRunFuture[Any]:
            raise NotImplementedError

    runner = Recording("y")
    copy = runner.duplicate()
    assert copy is not runner and copy == runner and copy.label == "y"
    assert runner.name == "recording"
    assert repr(runner) == "Recording(label='y')"


def test_thread_pool_settings_copies_and_equality() -> None:
    runner = ThreadPoolTaskRunner(max_workers=4)
    assert runner.name == "threadpool"
    assert runner.duplicate() == runner and runner.duplicate() is not runner
    assert runner != ThreadPoolTaskRunner()
    assert repr(runner) == "ThreadPoolTaskRunner(max_workers=4)"
    with runner:
        assert runner == ThreadPoolTaskRunner(max_workers=4)  # the pool is no setting


@pytest.mark.parametrize("bad", [0, -1, True])
def test_max_workers_must_be_positive(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ThreadPoolTaskRunner(max_workers=bad)


def test_submit_needs_a_started_runner() -> None:
    from headwater import task

    @task
    def nothing() -> None: ...

    with pytest.raises(RuntimeError, match="must be started"):
        ThreadPoolTaskRunner().submit(nothing, {})


def test_a_runner_in_use_cannot_be_entered_again() -> None:
    runner = ThreadPoolTaskRunner()
    with runner, pytest.raises(RuntimeError, match="duplicate"):
        runner.__enter__()
    with runner:  # usable again once exited
        pass

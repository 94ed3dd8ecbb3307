"""Task calls against a real server subprocess (SQLite and PostgreSQL), over TCP.

What needs a process boundary: a cached result computed by one process is returned to the
next without running the task, because the cache lives in the service (and the result in
result storage).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Reader, current_run_id, sdk_target, unique
from headwater import StateType, flow, task

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

CACHED_SCRIPT = textwrap.dedent(
    """
    import datetime, json, sys
    from headwater import flow, task
    from headwater.cache_policies import INPUTS
    from headwater.runtime import flow_run
    from headwater.tasks import task_input_hash

    ran = []
    # Prefect's two spellings: a cache policy, or the older cache_key_fn=task_input_hash.
    caching = (
        {"cache_policy": INPUTS}
        if sys.argv[2] == "policy"
        else {"cache_key_fn": task_input_hash, "cache_expiration": datetime.timedelta(hours=1)}
    )

    @task(name="square", persist_result=True, **caching)
    def square(x: int) -> int:
        ran.append(x)
        return x * x

    @flow(name=sys.argv[1])
    def squares() -> list[int]:
        return [square(3), square(4)]

    print(json.dumps({"result": squares(), "ran": ran}), flush=True)
    """
)


@pytest.fixture(scope="module")
def reader(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    with sdk_target(tmp_path_factory.mktemp("task-client-home"), api_url=server.address):
        reader = Reader()
        yield reader
        reader.close()


def test_task_runs_are_stored_with_their_states(reader: Reader) -> None:
    attempts: list[int] = []

    @task(retries=2, retry_delay_seconds=[0, 0], task_run_name="flaky-{x}")
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 2:
            raise RuntimeError("once")
        return x

    seen: dict[str, Any] = {}

    @flow(name=unique())
    def pipeline() -> int:
        seen["flow_run_id"] = current_run_id()
        return flaky(5)

    assert pipeline() == 5
    (run,) = reader.client.list_task_runs(seen["flow_run_id"])
    assert run.name == "flaky-5"
    assert run.state is not None and run.state.type is StateType.COMPLETED
    assert run.run_count == 2


@pytest.mark.parametrize("caching", ["policy", "task_input_hash"])
def test_a_cache_hit_across_processes(server: Any, tmp_path: Path, caching: str) -> None:
    name = unique("squares")
    env = {
        **os.environ,
        "HEADWATER_API_URL": server.address,
        "HEADWATER_HOME": str(tmp_path),  # the result storage both processes share
        "PYTHONPATH": str(ROOT / "python_client"),
    }
    env.pop("HEADWATER_DATABASE_URL", None)
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", CACHED_SCRIPT, name, caching],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outputs[0] == {"result": [9, 16], "ran": [3, 4]}
    assert outputs[1] == {"result": [9, 16], "ran": []}

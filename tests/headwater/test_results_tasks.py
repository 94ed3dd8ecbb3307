"""Persisted task results, written by one process and read back by another through the client
and the CLI, against a real server subprocess: each serializer, templated storage keys, and a
result file that went missing or was damaged."""

from __future__ import annotations

import fractions
import json
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_support import sdk_target, unique
from headwater import flow, task
from headwater._results import ResultReference
from headwater.client import HeadwaterClient
from headwater.exceptions import MissingResult
from test_cli import cli_env, run_cli

pytestmark = pytest.mark.integration

#: Runs a flow whose task persists its result with the serializer named in argv[1], under
#: the directory argv[2], at a key templated from its parameter; prints the run ids.
WRITER = textwrap.dedent(
    """
    import fractions, json, sys
    from headwater import flow, task
    from headwater.runtime import flow_run, task_run

    serializer, store, flow_name = sys.argv[1:4]
    ids = {}

    @task(
        result_serializer=serializer,
        result_storage=store,
        result_storage_key="square-{parameters[n]}.out",
    )
    def square(n: int):
        ids["task_run_id"] = task_run.id
        if serializer == "json":
            return {"n": n, "square": n * n}
        if serializer == "pickle":
            return fractions.Fraction(n * n, 7)  # importable everywhere: plain pickle works
        return lambda x: x + n * n  # a closure: only cloudpickle stores it

    @flow(name=flow_name, result_serializer=serializer, result_storage=store)
    def pipeline(n: int):
        ids["flow_run_id"] = flow_run.id
        return square(n)

    pipeline(3)
    print(json.dumps(ids))
    """
)


def write(serializer: str, store: Path, server: Any, home: Path) -> dict[str, str]:
    return run_writer(
        WRITER, [serializer, str(store), f"results-{uuid.uuid4().hex[:8]}"], server, home
    )


def run_writer(script: str, argv: list[str], server: Any, home: Path) -> dict[str, str]:
    """Run ``script`` in a new process against ``server``; the ids it printed last."""
    done = subprocess.run(
        [sys.executable, "-c", script, *argv],
        env=cli_env(server.address, home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    ids: dict[str, str] = json.loads(done.stdout.splitlines()[-1])
    return ids


def check_value(serializer: str, value: Any) -> None:
    if serializer == "json":
        assert value == {"n": 3, "square": 9}
    elif serializer == "pickle":
        assert value == fractions.Fraction(9, 7)
    else:
        assert value(1) == 10


@pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "json"])
def test_a_later_process_reads_a_persisted_task_result(
    serializer: str, sqlite_server: Any, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    ids = write(serializer, store, sqlite_server, tmp_path)

    stored = store / "square-3.out"  # the templated key, under the task's result storage
    if serializer == "json":
        assert json.loads(stored.read_bytes()) == {"n": 3, "square": 9}
    elif serializer == "pickle":
        assert pickle.loads(stored.read_bytes()) == fractions.Fraction(9, 7)
    with HeadwaterClient(sqlite_server.address) as client:
        check_value(serializer, client.get_task_run_result(ids["task_run_id"]))
        task_run = client.get_task_run(ids["task_run_id"])
        assert task_run.state is not None
        check_value(serializer, task_run.state.result())
        # The flow returned the task's value and persisted it in its own file.
        check_value(serializer, client.get_flow_run_result(ids["flow_run_id"]))

    shown = run_cli("task-run", "inspect", ids["task_run_id"], api_url=sqlite_server.address,
                    home=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    result_row = next(line for line in shown.stdout.splitlines() if line.startswith("Result"))
    assert f"persisted to {stored} ({serializer})" in result_row
    flow_shown = run_cli("flow-run", "inspect", ids["flow_run_id"], api_url=sqlite_server.address,
                         home=tmp_path)  # fmt: skip
    assert flow_shown.returncode == 0, flow_shown.stderr
    assert f"({serializer})" in next(
        line for line in flow_shown.stdout.splitlines() if line.startswith("Result")
    )
    task_row = next(line for line in flow_shown.stdout.splitlines() if "square-0" in line)
    assert task_row.rstrip().endswith(f"persisted ({serializer})")


def test_a_missing_or_damaged_result_file_is_a_clear_error(
    sqlite_server: Any, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    ids = write("pickle", store, sqlite_server, tmp_path)
    stored = store / "square-3.out"
    with HeadwaterClient(sqlite_server.address) as client:
        stored.write_bytes(b"not a pickle")
        with pytest.raises(MissingResult, match="cannot be decoded with serializer 'pickle'"):
            client.get_task_run_result(ids["task_run_id"])
        stored.unlink()
        with pytest.raises(MissingResult, match="no longer exists") as missing:
            client.get_task_run_result(ids["task_run_id"])
        assert str(stored) in str(missing.value)
    # The CLI still shows where the result was: inspecting never reads it.
    shown = run_cli("task-run", "inspect", ids["task_run_id"], api_url=sqlite_server.address,
                    home=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"persisted to {stored} (pickle)" in shown.stdout


def test_a_result_not_cached_in_memory_is_read_back_from_storage(
    sqlite_server: Any, tmp_path: Path
) -> None:
    store = tmp_path / "store"

    @task(
        cache_result_in_memory=False,
        result_storage=str(store),
        result_serializer="json",
        result_storage_key="made-{parameters[n]}.json",
    )
    def make(n: int) -> list[int]:
        return list(range(n))

    seen: dict[str, Any] = {}

    @flow(name=unique("in-memory"))
    def pipeline() -> list[int]:
        seen["state"] = make(2, return_state=True)
        return make(3)  # the caller still gets the value

    with sdk_target(tmp_path / "home", api_url=sqlite_server.address):
        assert pipeline() == [0, 1, 2]
    state = seen["state"]
    assert isinstance(state.data, ResultReference)  # only where it is, not the value
    assert state.result() == [0, 1]
    (store / "made-2.json").unlink()
    with pytest.raises(MissingResult):
        state.result()


#: Prefect's result-storage idioms, with only the import changed: a `LocalFileSystem` block and
#: serializer objects from `headwater.serializers`, and the names "pickle" (cloudpickle, so a
#: closure is stored) and "compressed/json". Prints the run ids.
PREFECT_IDIOMS = textwrap.dedent(
    """
    import json, sys
    from headwater import flow, task
    from headwater.filesystems import LocalFileSystem
    from headwater.runtime import task_run
    from headwater.serializers import CompressedSerializer, PickleSerializer

    store = LocalFileSystem(basepath=sys.argv[1])
    ids = {}

    @task(
        result_storage=store,
        result_serializer=CompressedSerializer(PickleSerializer(), compressionlib="zlib"),
        result_storage_key="closure.zz",
    )
    def closure(n: int):
        ids["closure"] = task_run.id
        return lambda x: x + n

    @task(result_storage=store, result_serializer="compressed/json", result_storage_key="rows.xz")
    def rows(n: int):
        ids["rows"] = task_run.id
        return {"rows": ["row"] * n}

    @flow(name=sys.argv[2], result_storage=store, result_serializer="pickle")
    def pipeline(n: int):
        add = closure(n)
        rows(n)
        return lambda x: add(x) * 2

    pipeline(100)
    print(json.dumps(ids))
    """
)


def test_prefects_result_storage_idioms_port_by_changing_the_import(
    sqlite_server: Any, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    flow_name = f"idioms-{uuid.uuid4().hex[:8]}"
    ids = run_writer(PREFECT_IDIOMS, [str(store), flow_name], sqlite_server, tmp_path)

    assert (store / "closure.zz").read_bytes()[:1] == b"\x78"  # zlib, as the object asked
    assert (store / "rows.xz").read_bytes().startswith(b"\xfd7zXZ\x00")  # lzma, Prefect's default
    with HeadwaterClient(sqlite_server.address) as client:
        # Another process rebuilds each serializer from the name its reference recorded.
        assert client.get_task_run_result(ids["closure"])(1) == 101
        assert client.get_task_run_result(ids["rows"]) == {"rows": ["row"] * 100}
        flow_run = client.list_flow_runs(flow_name=flow_name)[0]
        assert client.get_flow_run_result(flow_run.id)(1) == 202  # "pickle" stored a closure

    shown = run_cli("task-run", "inspect", ids["closure"], api_url=sqlite_server.address,
                    home=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"persisted to {store / 'closure.zz'} (compressed/pickle)" in shown.stdout

"""`Flow.visualize()`: the task graph as DOT text, drawn without running any task.

Graphviz's ``dot`` is optional. Where it is not installed, a small stand-in script on the PATH
checks how it is called (DOT on stdin, ``-Tpng -o FILE``), and a test with the real program
runs where it exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from pathlib import Path

import pytest
from engine_support import Reader, sdk_target, unique
from headwater import flow, task
from headwater.exceptions import FlowVisualizationError

ran: list[str] = []

#: Found before the tests empty the PATH, for the stand-in ``dot`` script.
CAT = shutil.which("cat") or "/bin/cat"


@task
def extract() -> list[int]:
    ran.append("extract")
    return [1, 2, 3]


@task
def transform(rows: list[int], factor: int = 2) -> list[int]:
    ran.append("transform")
    return [row * factor for row in rows]


@task(name="load")
def load(rows: object) -> None:
    ran.append("load")


@task
async def aload(rows: object) -> None:
    ran.append("aload")


@flow
def cleanup(rows: object) -> int:
    ran.append("cleanup")
    return 0


@pytest.fixture(autouse=True)
def no_dot_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a scratch directory with no ``dot`` on the PATH unless a test puts one there."""
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    ran.clear()
    return bin_dir


def edges(dot: str) -> list[str]:
    return [line.strip().rstrip(";") for line in dot.splitlines() if "->" in line]


def test_the_graph_follows_results_passed_on_and_runs_no_task() -> None:
    @flow(name="etl")
    def etl(n: int) -> None:
        rows = extract()
        first = transform(rows, factor=n)
        both = transform([rows, {"nested": first}])  # stand-ins found inside containers
        load(both)
        cleanup(first, wait_for=[rows])  # a subflow: a node too; wait_for draws an edge

    dot = etl.visualize(3)

    assert ran == []  # neither the tasks nor the subflow ran
    assert dot.startswith('digraph "etl" {')
    assert '"cleanup-0" [peripheries=2]' in dot
    assert edges(dot) == [
        '"extract-0" -> "transform-0"',
        '"extract-0" -> "transform-1"',
        '"transform-0" -> "transform-1"',
        '"transform-1" -> "load-0"',
        '"transform-0" -> "cleanup-0"',
        '"extract-0" -> "cleanup-0"',
    ]


def test_submit_and_map_record_one_node_per_run_with_their_edges() -> None:
    from headwater import unmapped

    @flow(name="fan-out")
    def fan_out() -> None:
        rows = extract.submit()
        scaled = transform.map([[1], [2], [3]], factor=unmapped(rows))
        load.submit(scaled, wait_for=[rows])  # a list of futures, and wait_for
        each = transform.map(rows)  # mapped over an upstream's result: length unknown here
        load(each.result())
        rows.wait()

    dot = fan_out.visualize()
    assert ran == []
    assert edges(dot) == [
        '"extract-0" -> "transform-0"',
        '"extract-0" -> "transform-1"',
        '"extract-0" -> "transform-2"',
        '"transform-0" -> "load-0"',
        '"transform-1" -> "load-0"',
        '"transform-2" -> "load-0"',
        '"extract-0" -> "load-0"',
        '"extract-0" -> "transform-3"',
        '"transform-3" -> "load-1"',
    ]


def test_a_map_that_would_fail_fails_while_visualizing_too() -> None:
    @flow
    def mismatched() -> None:
        transform.map([[1], [2]], factor=[1, 2, 3])

    with pytest.raises(FlowVisualizationError, match=r"rows=2, factor=3"):
        mismatched.visualize()


def test_an_async_flow_awaits_its_tasks_stand_ins() -> None:
    @flow(name="async-etl")
    async def etl() -> None:
        await aload(extract())

    assert edges(etl.visualize()) == ['"extract-0" -> "aload-0"']
    assert ran == []

    async def from_a_running_loop() -> tuple[str, str]:
        # Prefect's spelling in async code awaits it; a plain call works there too.
        return await etl.visualize(), etl.visualize()

    awaited, plain = asyncio.run(from_a_running_loop())
    assert type(awaited) is str
    assert edges(awaited) == edges(plain) == ['"extract-0" -> "aload-0"']


def test_code_that_uses_a_result_directly_says_what_to_do() -> None:
    @flow
    def loops() -> None:
        for row in extract():
            load(row)

    with pytest.raises(FlowVisualizationError, match="viz_return_value=") as info:
        loops.visualize()
    assert isinstance(info.value.__cause__, TypeError)


def test_a_viz_return_value_lets_flow_code_use_the_result_and_keeps_edges() -> None:
    @task(viz_return_value=[10, 20])
    def listed() -> list[int]:
        ran.append("listed")
        return [1, 2, 3]

    @flow
    def loops() -> None:
        numbers = listed()
        for number in numbers:  # works on the stand-in value: two calls drawn
            transform([number])
        load(numbers)  # the value itself passed on: an edge
        load(listed.submit().result())

    dot = loops.visualize()
    assert ran == []
    assert edges(dot) == [
        '"listed-0" -> "load-0"',
        '"listed-1" -> "load-1"',
    ]
    assert '"transform-1";' in dot
    assert listed.with_options(name="other").viz_return_value == [10, 20]


def test_nothing_reaches_the_service(tmp_path: Path) -> None:
    name = unique("viz")

    @flow(name=name)
    def etl() -> None:
        load(extract())

    with sdk_target(tmp_path / "home"):
        etl.visualize()
        reader = Reader()
        try:
            assert reader.client.list_flow_runs(flow_name=name) == []
            assert reader.client.list_task_runs(limit=5) == []
        finally:
            reader.close()


def test_names_are_quoted_for_dot() -> None:
    @task(name='say "hi"\\now')
    def odd() -> None: ...

    @flow(name='my "flow"')
    def quoting() -> None:
        odd()

    dot = quoting.visualize()
    assert dot.startswith('digraph "my \\"flow\\"" {')
    assert '"say \\"hi\\"\\\\now-0";' in dot


def test_without_dot_only_the_text_is_made(tmp_path: Path) -> None:
    @flow(name="plain")
    def plain() -> None:
        extract()

    assert "extract-0" in plain.visualize()
    assert not (tmp_path / "plain.png").exists()


def _stand_in_dot(bin_dir: Path, body: str) -> None:
    script = bin_dir / "dot"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_dot_gets_the_text_on_stdin_and_writes_the_flows_png(
    tmp_path: Path, no_dot_by_default: Path
) -> None:
    # Records its arguments and copies stdin to the -o file: what the real program is given.
    _stand_in_dot(no_dot_by_default, f'echo "$@" > args.txt; {CAT} > "$3"')

    @flow(name="drawn flow")
    def drawn() -> None:
        load(extract())

    dot = drawn.visualize()
    image = tmp_path / "drawn_flow.png"
    assert (tmp_path / "args.txt").read_text().split() == ["-Tpng", "-o", str(image)]
    assert image.read_text() == dot


def test_dot_refusing_the_graph_is_a_clear_error(no_dot_by_default: Path) -> None:
    _stand_in_dot(no_dot_by_default, "echo 'syntax error in line 1' >&2; exit 1")

    @flow(name="refused")
    def refused() -> None:
        extract()

    with pytest.raises(FlowVisualizationError, match="syntax error in line 1"):
        refused.visualize()


def test_the_real_dot_renders_a_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("dot", path=os.defpath + os.pathsep + "/usr/local/bin")
    if real is None:
        pytest.skip("Graphviz's dot is not installed here (apt-get install graphviz)")
    monkeypatch.setenv("PATH", str(Path(real).parent))

    @flow(name="real")
    def real_flow() -> None:
        load(transform(extract()))

    real_flow.visualize()
    assert (tmp_path / "real.png").read_bytes().startswith(b"\x89PNG")

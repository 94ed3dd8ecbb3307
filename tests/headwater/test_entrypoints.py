"""Loading flows from entrypoints: real scripts in temporary directories and real packages."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from headwater import Flow, flow
from headwater._entrypoints import _split_entrypoint
from headwater.exceptions import MissingFlowError, ScriptError, UnspecifiedFlowError
from headwater.flows import (
    is_entrypoint_async,
    load_flow_arguments_from_entrypoint,
    load_flow_from_entrypoint,
    load_flows_from_script,
    load_placeholder_flow,
    safe_load_flow_from_entrypoint,
    select_flow,
)


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A uniquely named real package on sys.path, removed from sys.modules afterwards."""
    name = f"hw_pkg_{uuid.uuid4().hex[:8]}"
    write(tmp_path / "pkgs" / name / "__init__.py", "")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


SIMPLE = """
    from headwater import flow

    @flow(name="simple-flow", retries=2)
    def simple(x: int = 1) -> int:
        "Doubles x."
        return x * 2

    def not_a_flow():
        return 1
"""


class TestSplitEntrypoint:
    def test_file_path(self) -> None:
        assert _split_entrypoint("flows/etl.py:main") == ("flows/etl.py", "main", True)

    def test_windows_drive_letter_uses_last_colon(self) -> None:
        assert _split_entrypoint("C:\\flows\\etl.py:main") == ("C:\\flows\\etl.py", "main", True)

    def test_module_path(self) -> None:
        assert _split_entrypoint("pkg.mod.main") == ("pkg.mod", "main", False)

    @pytest.mark.parametrize("bad", ["main", "file.py:", ":main", "pkg."])
    def test_invalid(self, bad: str) -> None:
        with pytest.raises(ValueError, match="Invalid entrypoint"):
            _split_entrypoint(bad)


class TestLoadFlowFromEntrypoint:
    def test_from_file(self, tmp_path: Path) -> None:
        script = write(tmp_path / "flows.py", SIMPLE)
        loaded = load_flow_from_entrypoint(f"{script}:simple")
        assert isinstance(loaded, Flow)
        assert loaded.name == "simple-flow"
        assert loaded.retries == 2
        assert loaded.description == "Doubles x."
        assert loaded.fn(3) == 6
        assert loaded._entrypoint == f"{script}:simple"

    def test_from_real_module_path(self, tmp_path: Path, package: str) -> None:
        write(tmp_path / "pkgs" / package / "flows.py", SIMPLE)
        loaded = load_flow_from_entrypoint(f"{package}.flows.simple")
        assert loaded.name == "simple-flow"
        assert loaded._entrypoint == f"{package}.flows:simple"
        assert sys.modules[f"{package}.flows"].simple is loaded

    def test_script_can_import_its_neighbours(self, tmp_path: Path) -> None:
        helper = f"helper_{uuid.uuid4().hex[:8]}"
        write(tmp_path / f"{helper}.py", "VALUE = 41\n")
        script = write(
            tmp_path / "uses_helper.py",
            f"""
            from headwater import flow
            from {helper} import VALUE

            @flow
            def answer():
                return VALUE + 1
            """,
        )
        try:
            assert load_flow_from_entrypoint(f"{script}:answer").fn() == 42
        finally:
            sys.modules.pop(helper, None)
        assert str(tmp_path) not in sys.path

    def test_two_scripts_with_the_same_flow_name_stay_separate(self, tmp_path: Path) -> None:
        first = write(
            tmp_path / "a" / "flows.py",
            "from headwater import flow\n@flow\ndef f():\n    return 'a'\n",
        )
        second = write(
            tmp_path / "b" / "flows.py",
            "from headwater import flow\n@flow\ndef f():\n    return 'b'\n",
        )
        flow_a = load_flow_from_entrypoint(f"{first}:f")
        flow_b = load_flow_from_entrypoint(f"{second}:f")
        assert (flow_a.fn(), flow_b.fn()) == ("a", "b")

    def test_missing_function(self, tmp_path: Path) -> None:
        script = write(tmp_path / "flows.py", SIMPLE)
        with pytest.raises(MissingFlowError, match="Flow function with name 'nope' not found in"):
            load_flow_from_entrypoint(f"{script}:nope")

    def test_function_that_is_not_a_flow(self, tmp_path: Path) -> None:
        script = write(tmp_path / "flows.py", SIMPLE)
        with pytest.raises(MissingFlowError, match="'not_a_flow' is not a flow"):
            load_flow_from_entrypoint(f"{script}:not_a_flow")

    def test_script_error_carries_the_user_exception(self, tmp_path: Path) -> None:
        script = write(tmp_path / "broken.py", "raise RuntimeError('bad script')\n")
        with pytest.raises(ScriptError) as info:
            load_flow_from_entrypoint(f"{script}:anything", use_placeholder_flow=False)
        assert isinstance(info.value.user_exc, RuntimeError)
        assert info.value.__cause__ is info.value.user_exc
        assert str(script) in str(info.value)
        assert "bad script" in str(info.value)

    def test_script_error_quotes_a_message_ending_in_a_full_stop_once(self, tmp_path: Path) -> None:
        script = write(tmp_path / "broken.py", "raise RuntimeError('bad script.')\n")
        with pytest.raises(ScriptError) as info:
            load_flow_from_entrypoint(f"{script}:anything", use_placeholder_flow=False)
        assert "RuntimeError: bad script. Fix the error" in str(info.value)

    def test_script_error_when_safe_loading_cannot_help(self, tmp_path: Path) -> None:
        script = write(tmp_path / "broken.py", "raise RuntimeError('bad script')\n")
        with pytest.raises(ScriptError):
            load_flow_from_entrypoint(f"{script}:anything")

    def test_missing_file_is_a_script_error(self, tmp_path: Path) -> None:
        with pytest.raises(ScriptError) as info:
            load_flow_from_entrypoint(f"{tmp_path / 'nope.py'}:f")
        assert isinstance(info.value.user_exc, FileNotFoundError)

    def test_missing_module_is_a_script_error(self) -> None:
        with pytest.raises(ScriptError) as info:
            load_flow_from_entrypoint("no_such_package_xyz.flows.f")
        assert isinstance(info.value.user_exc, ModuleNotFoundError)

    def test_missing_dependency_falls_back_to_safe_loading(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "needs_dep.py",
            """
            import not_installed_dependency_xyz as dep
            from headwater import flow

            LIMIT = 10

            @flow(name="needs-dep", retries=1)
            def uses_dep(frame: dep.Frame, limit: int = LIMIT, other=dep.DEFAULT):
                return limit
            """,
        )
        loaded = load_flow_from_entrypoint(f"{script}:uses_dep")
        assert loaded.name == "needs-dep"
        assert loaded.retries == 1
        assert loaded.fn(None) == 10
        with pytest.raises(ScriptError):
            load_flow_from_entrypoint(f"{script}:uses_dep", use_placeholder_flow=False)


class TestLoadFlowsFromScript:
    def test_all_top_level_flows(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "many.py",
            """
            from headwater import flow

            @flow
            def first(): ...

            @flow(name="second-one")
            def second(): ...
            """,
        )
        assert sorted(f.name for f in load_flows_from_script(str(script))) == [
            "first",
            "second-one",
        ]


class TestSelectFlow:
    def flows(self) -> list[Flow[..., object]]:
        return [flow(name="a")(lambda: 1), flow(name="b")(lambda: 2)]

    def test_only_flow(self) -> None:
        only = flow(name="only")(lambda: 1)
        assert select_flow([only]) is only

    def test_by_name(self) -> None:
        assert select_flow(self.flows(), flow_name="b").name == "b"

    def test_empty(self) -> None:
        with pytest.raises(MissingFlowError, match=r"^No flows found in 'x.py'\."):
            select_flow([], from_message="in 'x.py'")

    def test_empty_without_source(self) -> None:
        with pytest.raises(MissingFlowError, match=r"^No flows found\."):
            select_flow(iter([]))

    def test_unknown_name(self) -> None:
        with pytest.raises(
            MissingFlowError,
            match=r"Flow 'c' not found in here\. Found the following flows: 'a', 'b'\.",
        ):
            select_flow(self.flows(), flow_name="c", from_message="in here")

    def test_several_without_name(self) -> None:
        with pytest.raises(
            UnspecifiedFlowError,
            match=r"Found 2 flows: 'a', 'b'\. Specify a flow name to select a flow\.",
        ):
            select_flow(self.flows())


class TestFlowArgumentsFromSource:
    def test_constants_are_read_without_running_anything(self, tmp_path: Path) -> None:
        marker = tmp_path / "ran"
        script = write(
            tmp_path / "side_effects.py",
            f"""
            import pathlib
            pathlib.Path({str(marker)!r}).write_text("ran")
            import not_installed_dependency_xyz
            from headwater import flow

            @flow(
                name="etl",
                version="1.0",
                retries=3,
                retry_delay_seconds=-1.5,
                description="Extract.",
                timeout_seconds=60,
                validate_parameters=False,
                persist_result=True,
                cache_result_in_memory=False,
                log_prints=None,
                task_runner=None,
            )
            def etl(): ...
            """,
        )
        arguments = load_flow_arguments_from_entrypoint(f"{script}:etl")
        assert arguments == {
            "name": "etl",
            "version": "1.0",
            "retries": "3",
            "retry_delay_seconds": "-1.5",
            "description": "Extract.",
            "timeout_seconds": "60",
            "validate_parameters": "False",
            "persist_result": "True",
            "cache_result_in_memory": "False",
            "log_prints": "None",
        }
        assert not marker.exists()

    def test_name_falls_back_to_function_name(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py", "from headwater import flow\n@flow\ndef my_etl_job(): ...\n"
        )
        assert load_flow_arguments_from_entrypoint(f"{script}:my_etl_job") == {"name": "my-etl-job"}

    def test_selected_arguments_only(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            "from headwater import flow\n@flow(retries=2, log_prints=True)\ndef job(): ...\n",
        )
        assert load_flow_arguments_from_entrypoint(f"{script}:job", arguments={"retries"}) == {
            "retries": "2"
        }

    def test_expressions_are_evaluated_in_a_safe_namespace(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            """
            import not_installed_dependency_xyz
            from headwater import flow

            PREFIX = "team"
            RETRIES = 2

            @flow(name=f"{PREFIX}-job", retries=RETRIES * 2, version=not_installed_dependency_xyz.V)
            def job(): ...

            if __name__ == "__main__":
                raise SystemExit("the main block must not run")
            """,
        )
        arguments = load_flow_arguments_from_entrypoint(f"{script}:job")
        assert arguments == {"name": "team-job", "retries": "4"}

    def test_attribute_decorator_form(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            "import headwater\n@headwater.flow(name='dotted')\nasync def job(): ...\n",
        )
        assert load_flow_arguments_from_entrypoint(f"{script}:job") == {"name": "dotted"}

    def test_from_module_path_without_importing(self, tmp_path: Path, package: str) -> None:
        write(
            tmp_path / "pkgs" / package / "jobs.py",
            "raise RuntimeError('must not be imported')\n"
            "from headwater import flow\n@flow(retries=5)\ndef job(): ...\n",
        )
        assert load_flow_arguments_from_entrypoint(f"{package}.jobs.job") == {
            "name": "job",
            "retries": "5",
        }
        assert f"{package}.jobs" not in sys.modules

    def test_missing_function(self, tmp_path: Path) -> None:
        script = write(tmp_path / "f.py", "x = 1\n")
        with pytest.raises(MissingFlowError, match="'job' not found"):
            load_flow_arguments_from_entrypoint(f"{script}:job")

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_flow_arguments_from_entrypoint(f"{tmp_path / 'nope.py'}:job")

    def test_missing_module(self) -> None:
        with pytest.raises(ModuleNotFoundError, match="no_such_package_xyz"):
            load_flow_arguments_from_entrypoint("no_such_package_xyz.mod.job")


class TestIsEntrypointAsync:
    def test_sync_and_async(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            "raise RuntimeError('never run')\ndef a(): ...\nasync def b(): ...\n",
        )
        assert is_entrypoint_async(f"{script}:a") is False
        assert is_entrypoint_async(f"{script}:b") is True

    def test_methods_by_dotted_name(self, tmp_path: Path) -> None:
        script = write(tmp_path / "f.py", "class C:\n    async def m(self): ...\n")
        assert is_entrypoint_async(f"{script}:C.m") is True


class TestSafeLoad:
    def test_loads_a_flow_whose_script_fails_later(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            """
            from headwater import flow

            @flow(name="early")
            def early():
                return "ok"

            raise RuntimeError("the rest of the script fails")
            """,
        )
        loaded = safe_load_flow_from_entrypoint(f"{script}:early")
        assert loaded is not None and loaded.name == "early" and loaded.fn() == "ok"
        assert loaded._entrypoint == f"{script}:early"

    def test_does_not_run_the_main_block(self, tmp_path: Path) -> None:
        marker = tmp_path / "ran"
        script = write(
            tmp_path / "f.py",
            f"""
            from headwater import flow

            @flow
            def job(): ...

            if __name__ == "__main__":
                open({str(marker)!r}, "w").close()
            """,
        )
        assert safe_load_flow_from_entrypoint(f"{script}:job") is not None
        assert not marker.exists()

    def test_flow_decorator_argument_from_missing_package_is_dropped(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            """
            from headwater import flow
            from not_installed_dependency_xyz import DaskTaskRunner

            @flow(name="dask-job", task_runner=DaskTaskRunner(), retries=2)
            def job(n: int = 1):
                return n
            """,
        )
        loaded = safe_load_flow_from_entrypoint(f"{script}:job")
        assert loaded is not None
        assert (loaded.name, loaded.retries, loaded.fn()) == ("dask-job", 2, 1)

    def test_returns_none_when_no_flow_can_be_made(self, tmp_path: Path) -> None:
        script = write(tmp_path / "f.py", "def plain():\n    return 1\n")
        assert safe_load_flow_from_entrypoint(f"{script}:plain") is None
        assert safe_load_flow_from_entrypoint(f"{script}:missing") is None
        assert safe_load_flow_from_entrypoint(f"{tmp_path / 'nope.py'}:f") is None


class TestPlaceholderFlow:
    def test_has_the_decorator_arguments_and_raises_when_run(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py",
            """
            import not_installed_dependency_xyz
            from headwater import flow

            @flow(name="etl", retries=3, retry_delay_seconds=2, validate_parameters=False,
                  timeout_seconds=30, log_prints=True, description="Extract things.")
            def etl(day: str): ...
            """,
        )
        error = ModuleNotFoundError("No module named 'not_installed_dependency_xyz'")
        placeholder = load_placeholder_flow(f"{script}:etl", raises=error)
        assert isinstance(placeholder, Flow)
        assert placeholder.name == "etl"
        assert placeholder.retries == 3
        assert placeholder.retry_delay_seconds == 2.0
        assert placeholder.should_validate_parameters is False
        assert placeholder.timeout_seconds == 30.0
        assert placeholder.log_prints is True
        assert placeholder.description == "Extract things."
        assert placeholder.isasync is False
        import hashlib

        assert placeholder.version == hashlib.md5(script.read_bytes()).hexdigest()
        with pytest.raises(ModuleNotFoundError) as info:
            placeholder.fn("2026-01-01")
        assert info.value is error

    def test_async_entrypoint_gives_async_placeholder(self, tmp_path: Path) -> None:
        script = write(
            tmp_path / "f.py", "from headwater import flow\n@flow\nasync def job(): ...\n"
        )
        error = RuntimeError("cannot load")
        placeholder = load_placeholder_flow(f"{script}:job", raises=error)
        assert placeholder.isasync is True
        assert placeholder.name == "job"
        with pytest.raises(RuntimeError, match="cannot load"):
            asyncio.run(placeholder.fn())

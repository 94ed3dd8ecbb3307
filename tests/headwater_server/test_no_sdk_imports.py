"""The service imports nothing from the SDK package but the generated ``headwater.v1`` stubs.

Read from the source (every module, every import statement, type-only ones included), so an
import hidden in a function body or behind ``TYPE_CHECKING`` counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import headwater_server

PACKAGE = Path(headwater_server.__file__).parent


def _sdk_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "headwater":
                names = [f"headwater.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "headwater" or (
                name.startswith("headwater.")
                and name != "headwater.v1"
                and not name.startswith("headwater.v1.")
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    return found


def test_no_module_of_the_service_imports_the_sdk() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30  # the whole package, migrations included
    offenders = [line for module in modules for line in _sdk_imports(module)]
    assert offenders == []


def test_the_check_sees_an_sdk_import(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from headwater.v1 import flows_pb2\n"
        "from headwater import v1\n"
        "import headwater.v1.states_pb2\n"
        "def f():\n"
        "    from headwater._settings import get_settings\n"
        "    from headwater import flow\n"
        "    import headwater\n"
    )
    found = _sdk_imports(source, root=tmp_path)
    assert [line.rsplit(": ", 1)[1] for line in found] == [
        "headwater._settings",
        "headwater.flow",
        "headwater",
    ]

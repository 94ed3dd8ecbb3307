"""The SDK's layers, checked from its source with `ast`: what may import what.

- Only the transport (``headwater/_transport/``) speaks the wire: nothing else imports grpc or
  the generated ``headwater.v1`` (the generated package itself aside).
- The engine (``headwater/_engine/``) knows flows only through its `Runnable` protocol and the
  service only through the grpc-free transport interface.
- No import cycle among the SDK's modules, counting imports made only for type checking and
  imports inside functions: each is a real dependency of the module that makes it.

Every import statement counts, wherever it sits, so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "python_client"
PACKAGE = SOURCE / "headwater"

#: Top-level names that are the wire: gRPC and its companions, and the generated stubs.
WIRE_PREFIXES = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "headwater.v1")

#: Modules outside the transport that may still import the wire, and why. Empty since the
#: public clients moved to headwater/_transport/client_*.py; an entry that no longer imports
#: the wire fails the test, so the list can only shrink back to empty.
WIRE_ALLOWED: dict[str, str] = {}

#: The server package: started in-process by the embedded mode, and by `headwater server start`.
SERVER_PACKAGE = "headwater_server"
SERVER_ALLOWED = {"headwater/_transport/embedded.py", "headwater/cli/_server.py"}

#: The one transport module the engine may import: the interface, which imports no gRPC.
ENGINE_TRANSPORT_ALLOWED = {"headwater._transport.interface"}


@dataclass(frozen=True)
class Import:
    """One imported name, as the module that imports it wrote it (made absolute)."""

    target: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sdk_modules() -> dict[str, Path]:
    """Every hand-written module of the SDK, by dotted name (the generated v1/ left out)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "v1") in path.parents:
            continue
        modules[module_name(path)] = path
    return modules


def imports_of(path: Path) -> list[Import]:
    """Every name ``path`` imports, anywhere in the module (functions, TYPE_CHECKING blocks)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from headwater import _parameters`` imports a module, ``from x import name`` a
            # name of module x: `import_graph` tells them apart.
            found += [Import(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def relative(path: Path) -> str:
    return path.relative_to(SOURCE).as_posix()


def is_wire(target: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in WIRE_PREFIXES)


def test_only_the_transport_imports_grpc_or_generated_code() -> None:
    offenders = []
    for path in sdk_modules().values():
        where = relative(path)
        if where.startswith("headwater/_transport/") or where in WIRE_ALLOWED:
            continue
        offenders += [
            f"{where}:{imp.line} imports {imp.target}"
            for imp in imports_of(path)
            if is_wire(imp.target)
        ]
    assert offenders == [], (
        "Only headwater/_transport/ may import grpc or headwater.v1; call the transport "
        "(headwater._transport.interface) instead:\n" + "\n".join(offenders)
    )


def test_the_wire_allow_list_is_still_needed() -> None:
    stale = [
        where
        for where in WIRE_ALLOWED
        if not any(is_wire(imp.target) for imp in imports_of(SOURCE / where))
    ]
    assert stale == [], f"These no longer import the wire; remove them from WIRE_ALLOWED: {stale}"


def test_only_the_embedded_mode_and_the_cli_start_the_server() -> None:
    offenders = [
        f"{relative(path)}:{imp.line} imports {imp.target}"
        for path in sdk_modules().values()
        if relative(path) not in SERVER_ALLOWED
        for imp in imports_of(path)
        if imp.target == SERVER_PACKAGE or imp.target.startswith(SERVER_PACKAGE + ".")
    ]
    assert offenders == [], "\n".join(offenders)


def engine_may_import(target: str) -> bool:
    """Outside the transport anything goes; inside it, only the interface."""
    if not target.startswith("headwater._transport."):
        return True
    return any(
        target == allowed or target.startswith(allowed + ".")
        for allowed in ENGINE_TRANSPORT_ALLOWED
    )


def test_the_engine_knows_flows_and_the_service_only_through_interfaces() -> None:
    offenders = []
    for name, path in sdk_modules().items():
        if not name.startswith("headwater._engine"):
            continue
        for imp in imports_of(path):
            target = imp.target
            if target == "headwater._flows" or target.startswith("headwater._flows."):
                offenders.append(f"{relative(path)}:{imp.line} imports {target} (use Runnable)")
            elif not engine_may_import(target):
                offenders.append(f"{relative(path)}:{imp.line} imports {target}")
    assert offenders == [], (
        "The engine may import only headwater._transport.interface of the transport, and "
        "nothing of headwater._flows:\n" + "\n".join(offenders)
    )


def test_the_transport_interface_is_cheap_to_import() -> None:
    path = PACKAGE / "_transport" / "interface.py"
    heavy = [
        imp.target
        for imp in imports_of(path)
        if is_wire(imp.target)
        or (imp.target.startswith("headwater._transport.") and imp.target != module_name(path))
    ]
    assert heavy == []


def import_graph() -> dict[str, set[str]]:
    """Module -> the SDK modules it imports (``from m import name`` counts as importing m)."""
    modules = sdk_modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imp in imports_of(path):
            target = imp.target if imp.target in modules else imp.target.rpartition(".")[0]
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_among_sdk_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, (
        "Import cycle (type-only and function-level imports count): " + " -> ".join(cycle or [])
    )


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_sdk_module_is_seen() -> None:
    names = set(sdk_modules())
    assert {"headwater._engine.machine", "headwater._transport.interface"} <= names
    assert not any(name.startswith("headwater.v1") for name in names)

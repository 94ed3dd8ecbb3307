"""Finding flows from entrypoint strings, with or without running their code.

An entrypoint names a flow function either by file, ``"path/to/flows.py:my_flow"``, or by
module, ``"package.module.my_flow"``. Workers and the CLI load flows this way; when a flow's
script cannot run here (a dependency is missing), its decorator arguments can still be read
from the source with `ast`, which is enough to build a placeholder that fails clearly when run.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from headwater._flows import Flow, _file_hash
from headwater._scripts import (
    LOADER_MODULE_PREFIX,
    get_attribute_path,
    import_flow,
    load_script_as_module,
    script_paths,
)
from headwater._scripts import split_entrypoint as _split_entrypoint
from headwater.exceptions import MissingFlowError, ScriptError, UnspecifiedFlowError

__all__ = [
    "is_entrypoint_async",
    "load_flow_arguments_from_entrypoint",
    "load_flow_from_entrypoint",
    "load_flows_from_script",
    "load_placeholder_flow",
    "safe_load_flow_from_entrypoint",
    "select_flow",
]

logger = logging.getLogger("headwater.flows")

#: The decorator arguments `load_flow_arguments_from_entrypoint` reads by default: the ones
#: whose values are plain built-in types.
DEFAULT_FLOW_ARGUMENTS = frozenset(
    {
        "name",
        "version",
        "retries",
        "retry_delay_seconds",
        "description",
        "timeout_seconds",
        "validate_parameters",
        "persist_result",
        "cache_result_in_memory",
        "log_prints",
    }
)


def load_flow_from_entrypoint(entrypoint: str, use_placeholder_flow: bool = True) -> Flow[..., Any]:
    """Load a flow by running the code at an entrypoint.

    Args:
        entrypoint: ``"path/to/file.py:flow_function"`` or ``"package.module.flow_function"``.
        use_placeholder_flow: When the script cannot run (say, a dependency is missing), try
            to load the flow from its definition alone (see `safe_load_flow_from_entrypoint`)
            before giving up.

    Returns:
        The flow object.

    Raises:
        ScriptError: Running the script raised, and no flow could be loaded without it.
        MissingFlowError: No such function, or it is not decorated with ``@flow``.
    """
    try:
        return import_flow(entrypoint, Flow)
    except ScriptError:
        if not use_placeholder_flow:
            raise
        loaded = safe_load_flow_from_entrypoint(entrypoint)
        if loaded is None:
            raise
        return loaded


def load_flows_from_script(path: str) -> list[Flow[..., Any]]:
    """Run a script and return every flow defined at its top level.

    Raises:
        ScriptError: Running the script raised.
    """
    module = load_script_as_module(path)
    return [value for value in vars(module).values() if isinstance(value, Flow)]


def select_flow(
    flows: Iterable[Flow[..., Any]],
    flow_name: str | None = None,
    from_message: str | None = None,
) -> Flow[..., Any]:
    """Pick the one flow in ``flows``, or the one named ``flow_name``.

    Args:
        flows: The candidates.
        flow_name: The flow's name (not its function's name) to select.
        from_message: Where the flows came from, for error messages (``"in 'etl.py'"``).

    Raises:
        MissingFlowError: There are no flows, or none with ``flow_name``.
        UnspecifiedFlowError: There are several flows and ``flow_name`` is not given.
    """
    flows_by_name = {candidate.name: candidate for candidate in flows}
    where = f" {from_message}" if from_message else ""
    if not flows_by_name:
        raise MissingFlowError(
            f"No flows found{where}. Check that the flow function is decorated with `@flow`."
        )
    if flow_name and flow_name not in flows_by_name:
        raise MissingFlowError(
            f"Flow {flow_name!r} not found{where}. "
            f"Found the following flows: {_listrepr(flows_by_name)}. "
            "Check to make sure that your flow function is decorated with `@flow`."
        )
    if not flow_name and len(flows_by_name) > 1:
        raise UnspecifiedFlowError(
            f"Found {len(flows_by_name)} flows{where}: {_listrepr(sorted(flows_by_name))}. "
            "Specify a flow name to select a flow."
        )
    if flow_name:
        return flows_by_name[flow_name]
    return next(iter(flows_by_name.values()))


def _listrepr(items: Iterable[str]) -> str:
    return ", ".join(repr(item) for item in items)


# -- reading definitions without running them ------------------------------------------------


def _module_source_path(module_name: str) -> Path:
    """The source file of a module, found without importing (or running) it.

    Looks in ``sys.modules`` and then along ``sys.path``; only as a last resort asks the import
    system, which imports the parent packages (but never the module itself).

    Raises:
        ModuleNotFoundError: No source file for that module can be found.
    """
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None):
        return Path(loaded.__file__)  # type: ignore[arg-type]
    parts = module_name.split(".")
    for entry in sys.path:
        base = Path(entry or os.getcwd()).joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and Path(spec.origin).is_file():
        return Path(spec.origin)
    raise ModuleNotFoundError(
        f"No source file found for module {module_name!r}. Check that it is installed, or "
        "that its directory is on sys.path (the working directory, or PYTHONPATH).",
        name=module_name,
    )


def _find_function(tree: ast.Module, dotted: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The definition of ``name`` or ``Class.name``; top-level definitions win over nested."""
    *owners, name = dotted.split(".")
    body: list[ast.stmt] = tree.body
    for owner in owners:
        found = next(
            (node for node in body if isinstance(node, ast.ClassDef) and node.name == owner),
            None,
        )
        if found is None:
            return None
        body = found.body
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    if owners:
        return None
    # Also find flows defined under `if`/`try` at module level.
    for nested in ast.walk(tree):
        if isinstance(nested, ast.FunctionDef | ast.AsyncFunctionDef) and nested.name == name:
            return nested
    return None


class _Definition:
    """A flow function's definition, its module source and the file it came from."""

    __slots__ = ("func_def", "path", "source")

    def __init__(
        self, func_def: ast.FunctionDef | ast.AsyncFunctionDef, source: str, path: Path
    ) -> None:
        self.func_def = func_def
        self.source = source
        self.path = path


def _entrypoint_definition(entrypoint: str) -> _Definition:
    """Parse the entrypoint's source and find its function, without running anything.

    Raises:
        FileNotFoundError: The entrypoint's file does not exist.
        ModuleNotFoundError: The entrypoint's module cannot be found.
        MissingFlowError: The source defines no such function.
    """
    location, name, is_file = _split_entrypoint(entrypoint)
    path = Path(location) if is_file else _module_source_path(location)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"The file {str(path)!r} named by entrypoint {entrypoint!r} does not exist. "
            "Check the path (relative paths start from the working directory)."
        ) from None
    tree = ast.parse(source, filename=str(path))
    func_def = _find_function(tree, name)
    if func_def is None:
        raise MissingFlowError(
            f"Flow function with name {name!r} not found in {str(path)!r}. "
            "Check the spelling of the entrypoint."
        )
    return _Definition(func_def, source, path)


def is_entrypoint_async(entrypoint: str) -> bool:
    """True when the entrypoint's function is ``async def``; read from source, never run."""
    return isinstance(_entrypoint_definition(entrypoint).func_def, ast.AsyncFunctionDef)


def _names_flow(node: ast.expr) -> bool:
    """``flow`` or ``something.flow`` (``headwater.flow``), called or not."""
    return (isinstance(node, ast.Name) and node.id == "flow") or (
        isinstance(node, ast.Attribute) and node.attr == "flow"
    )


def _is_flow_decorator(decorator: ast.expr) -> bool:
    """``@flow(...)`` or ``@something.flow(...)``: a decorator that can carry arguments."""
    return isinstance(decorator, ast.Call) and _names_flow(decorator.func)


def load_flow_arguments_from_entrypoint(
    entrypoint: str, arguments: list[str] | set[str] | None = None
) -> dict[str, Any]:
    """Read a flow's ``@flow(...)`` arguments from its source, as strings.

    Constant values (``retries=3``, ``name="etl"``, ``timeout_seconds=-1``) are read from the
    syntax tree alone; nothing is imported or run for them. Other expressions
    (``name=FLOW_NAME``) are evaluated in a namespace built as `safe_load_flow_from_entrypoint`
    builds it, and skipped if that fails.

    Args:
        entrypoint: ``"path/to/file.py:flow_function"`` or ``"package.module.flow_function"``.
        arguments: The argument names to read; by default the ones whose values are plain
            built-in types (`DEFAULT_FLOW_ARGUMENTS`).

    Returns:
        ``{argument: str(value)}``, always with ``"name"`` when it was asked for (falling
        back to the function's name with ``_`` replaced by ``-``).
    """
    wanted = DEFAULT_FLOW_ARGUMENTS if arguments is None else set(arguments)
    return _flow_arguments(_entrypoint_definition(entrypoint), wanted)


def _flow_arguments(definition: _Definition, wanted: Collection[str]) -> dict[str, Any]:
    """`load_flow_arguments_from_entrypoint` on a definition already parsed."""
    result: dict[str, Any] = {}
    namespace: dict[str, Any] | None = None

    for decorator in definition.func_def.decorator_list:
        if not _is_flow_decorator(decorator):
            continue
        assert isinstance(decorator, ast.Call)
        for keyword in decorator.keywords:
            if keyword.arg is None or keyword.arg not in wanted:
                continue
            try:
                result[keyword.arg] = str(ast.literal_eval(keyword.value))
                continue
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
            if namespace is None:
                namespace = _safe_namespace(definition)
            try:
                value = _eval_node(keyword.value, namespace, definition.path)
            except Exception as exc:
                logger.info(
                    "Ignoring @flow argument %s=%s in %s: it cannot be evaluated (%s: %s); "
                    "the default applies.",
                    keyword.arg,
                    ast.get_source_segment(definition.source, keyword.value),
                    definition.path,
                    type(exc).__name__,
                    exc,
                )
                continue
            result[keyword.arg] = str(value)

    if "name" in wanted and "name" not in result:
        result["name"] = definition.func_def.name.replace("_", "-")
    return result


def _eval_node(node: ast.expr, namespace: dict[str, Any], path: Path) -> Any:
    expression = ast.Expression(body=node)
    ast.fix_missing_locations(expression)
    return eval(compile(expression, str(path), "eval"), namespace)


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``, which loading must never run."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    names = [node.test.left, *node.test.comparators]
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)


def _safe_namespace(definition: _Definition) -> dict[str, Any]:
    """Run a module's top-level statements one at a time, skipping any that fail.

    A script whose import of a missing package fails still defines its constants, functions
    and flows (those that do not need the package), which is what loading the flow's
    definition needs. ``if __name__ == "__main__":`` blocks are never run.
    """
    path = definition.path
    tree = ast.parse(definition.source, filename=str(path))
    namespace: dict[str, Any] = {
        "__name__": f"{LOADER_MODULE_PREFIX}_safe__",
        "__file__": str(path),
        "__builtins__": builtins,
    }
    with script_paths(path):
        for node in tree.body:
            if _is_main_guard(node):
                continue
            module = ast.Module(body=[node], type_ignores=[])
            try:
                exec(compile(module, str(path), "exec"), namespace)
            except Exception as exc:
                logger.debug(
                    "Skipping line %s of %s while loading it safely: %s: %s",
                    getattr(node, "lineno", "?"),
                    path,
                    type(exc).__name__,
                    exc,
                )
    return namespace


def _evaluates(node: ast.expr | None, namespace: dict[str, Any], path: Path) -> bool:
    if node is None:
        return True
    try:
        _eval_node(node, dict(namespace), path)
    except Exception:
        return False
    return True


def _sanitized_definition(
    func_def: ast.FunctionDef | ast.AsyncFunctionDef, namespace: dict[str, Any], path: Path
) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """A copy of the definition with every piece that cannot be evaluated taken out.

    Annotations that fail are dropped, defaults that fail become None, and flow-decorator
    arguments that fail are left out, so a flow whose types come from a missing package can
    still be defined.
    """
    import copy

    clean = copy.deepcopy(func_def)
    args = clean.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None and not _evaluates(arg.annotation, namespace, path):
            arg.annotation = None
    if not _evaluates(clean.returns, namespace, path):
        clean.returns = None
    args.defaults = [
        d if _evaluates(d, namespace, path) else ast.Constant(value=None) for d in args.defaults
    ]
    args.kw_defaults = [
        d if d is None or _evaluates(d, namespace, path) else ast.Constant(value=None)
        for d in args.kw_defaults
    ]
    decorators: list[ast.expr] = []
    for decorator in clean.decorator_list:
        if _is_flow_decorator(decorator):
            assert isinstance(decorator, ast.Call)
            decorator.keywords = [
                k for k in decorator.keywords if _evaluates(k.value, namespace, path)
            ]
            decorators.append(decorator)
        elif _names_flow(decorator) or _evaluates(decorator, namespace, path):
            decorators.append(decorator)
    clean.decorator_list = decorators
    return ast.fix_missing_locations(clean)


def safe_load_flow_from_entrypoint(entrypoint: str) -> Flow[..., Any] | None:
    """Load a flow from its definition when its script cannot run as a whole.

    The module's top-level statements run one at a time and failures are skipped (a missing
    package's import, code that uses it); ``if __name__ == "__main__":`` never runs. If the flow
    still is not defined, its definition is run again without the annotations, defaults and
    decorator arguments that cannot be evaluated.

    Returns:
        The flow, or None when it cannot be loaded this way either.
    """
    try:
        definition = _entrypoint_definition(entrypoint)
        namespace = _safe_namespace(definition)
        object_path = _split_entrypoint(entrypoint)[1]
        try:
            candidate = get_attribute_path(_Namespace(namespace), object_path)
        except AttributeError:
            candidate = None
        if isinstance(candidate, Flow):
            return candidate
        if "." in object_path:
            return None  # a method cannot be redefined on its own
        # A script whose `from headwater import flow` was skipped still gets the decorator.
        if "flow" not in namespace:
            from headwater._flows import flow as headwater_flow

            namespace["flow"] = headwater_flow
        clean = _sanitized_definition(definition.func_def, namespace, definition.path)
        module = ast.Module(body=[clean], type_ignores=[])
        exec(compile(module, str(definition.path), "exec"), namespace)
        candidate = namespace.get(object_path)
        return candidate if isinstance(candidate, Flow) else None
    except Exception as exc:
        logger.debug("Could not load %r safely: %s: %s", entrypoint, type(exc).__name__, exc)
        return None


class _Namespace:
    """Attribute access over a namespace dict, to follow ``Class.method`` paths."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        try:
            return self._namespace[name]
        except KeyError:
            raise AttributeError(name) from None


_BOOLEAN_ARGUMENTS = frozenset(
    {"validate_parameters", "persist_result", "cache_result_in_memory", "log_prints"}
)
_NUMBER_ARGUMENTS = frozenset({"retries", "retry_delay_seconds", "timeout_seconds"})


def _typed_flow_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Turn the strings `load_flow_arguments_from_entrypoint` returns back into values.

    ``"False"`` must not reach ``Flow(validate_parameters=...)`` as a (truthy) string, and
    ``retries`` must be a number the engine can count with. Values that do not parse are
    dropped, so the default applies.
    """
    typed: dict[str, Any] = {}
    for key, value in arguments.items():
        if not isinstance(value, str):
            typed[key] = value
        elif key in _BOOLEAN_ARGUMENTS:
            mapping = {"True": True, "False": False, "None": None}
            if value in mapping:
                typed[key] = mapping[value]
        elif key in _NUMBER_ARGUMENTS:
            if value == "None":
                typed[key] = None
                continue
            try:
                typed[key] = int(value) if key == "retries" else float(value)
            except ValueError:
                continue
        elif value == "None" and key in ("version", "description"):
            typed[key] = None
        else:
            typed[key] = value
    return typed


def load_placeholder_flow(entrypoint: str, raises: BaseException) -> Flow[..., Any]:
    """A stand-in flow with the real flow's decorator arguments that raises ``raises`` if run.

    Used when a flow's code cannot be loaded here (missing dependencies) but its metadata
    (name, retries, version...) is still needed, e.g. to report a run's failure properly.
    The placeholder is async when the real flow is.

    Args:
        entrypoint: ``"path/to/file.py:flow_function"`` or ``"package.module.flow_function"``.
        raises: The exception calling the placeholder raises.
    """

    def _raise() -> None:
        raise raises

    def sync_placeholder_flow(*args: Any, **kwargs: Any) -> None:
        _raise()

    async def async_placeholder_flow(*args: Any, **kwargs: Any) -> None:
        _raise()

    definition = _entrypoint_definition(entrypoint)
    is_async = isinstance(definition.func_def, ast.AsyncFunctionDef)
    placeholder = async_placeholder_flow if is_async else sync_placeholder_flow
    arguments = _typed_flow_arguments(_flow_arguments(definition, DEFAULT_FLOW_ARGUMENTS))
    if not arguments.get("version"):
        # The placeholder's own source is this module: version it by the real flow's file.
        arguments["version"] = _file_hash(str(definition.path))
    return Flow(fn=placeholder, **arguments)

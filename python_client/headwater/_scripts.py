"""Running the code an entrypoint names: a script file as a fresh module, or a module import.

Below `headwater._flows` in the import graph (it knows flows only as the type its caller passes),
so both the entrypoint loaders (`headwater._entrypoints`) and `Flow.from_source` use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from headwater.exceptions import MissingFlowError, ScriptError

__all__ = [
    "LOADER_MODULE_PREFIX",
    "get_attribute_path",
    "import_flow",
    "import_object",
    "load_script_as_module",
    "script_paths",
    "split_entrypoint",
]

F = TypeVar("F")

#: Module names given to scripts run by the entrypoint loader; such flows are identified by
#: their file path instead, which is what a later process can load again.
LOADER_MODULE_PREFIX = "__headwater_loader"

# sys.path is process-wide; two threads loading scripts must not undo each other's entries.
_sys_path_lock = threading.RLock()


def split_entrypoint(entrypoint: str) -> tuple[str, str, bool]:
    """Split into (file path or module name, object name, is_file).

    The last ``:`` separates a file path from the object, so a Windows drive letter
    (``C:\\flows\\etl.py:main``) stays part of the path.
    """
    if ":" in entrypoint:
        path, name = entrypoint.rsplit(":", maxsplit=1)
        if path and name:
            return path, name, True
    elif "." in entrypoint:
        module, name = entrypoint.rsplit(".", maxsplit=1)
        if module and name:
            return module, name, False
    raise ValueError(
        f"Invalid entrypoint {entrypoint!r}. Use 'path/to/file.py:flow_function' or "
        "'package.module.flow_function'."
    )


@contextlib.contextmanager
def script_paths(path: Path) -> Iterator[None]:
    """Let a script import its neighbours (and the working directory's modules) while it runs."""
    entries = [str(path.resolve().parent), os.getcwd()]
    with _sys_path_lock:
        for entry in reversed(entries):
            sys.path.insert(0, entry)
        try:
            yield
        finally:
            for entry in entries:
                with contextlib.suppress(ValueError):
                    sys.path.remove(entry)


def _loader_module_name(path: Path) -> str:
    """A module name unique to the script's path, so loading two scripts keeps both."""
    digest = hashlib.md5(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{LOADER_MODULE_PREFIX}_{digest}__"


def load_script_as_module(path: str) -> ModuleType:
    """Run a Python file as a fresh module and return it.

    Raises:
        ScriptError: The file is missing or raised while running; ``user_exc`` holds why.
    """
    script = Path(path)
    module_name = _loader_module_name(script)
    try:
        spec = importlib.util.spec_from_file_location(module_name, script)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path!r} is not a Python file that can be loaded")
        module = importlib.util.module_from_spec(spec)
        # Registered while it runs, as imports do, so dataclasses and pickling inside work.
        sys.modules[module_name] = module
        with script_paths(script):
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ScriptError(user_exc=exc, path=path) from exc
    return module


def get_attribute_path(target: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        target = getattr(target, part)
    return target


def import_object(entrypoint: str) -> Any:
    """Run the entrypoint's file (or import its module) and return the named object.

    Raises:
        ScriptError: Running the file or importing the module raised.
        AttributeError: The file or module has no such object.
    """
    location, name, is_file = split_entrypoint(entrypoint)
    if is_file:
        module = load_script_as_module(location)
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise ScriptError(user_exc=exc, path=location) from exc
    return get_attribute_path(module, name)


def import_flow(entrypoint: str, flow_type: type[F]) -> F:
    """Run the entrypoint's code and return its flow (an instance of ``flow_type``).

    Raises:
        ScriptError: Running the file or importing the module raised.
        MissingFlowError: No such function, or it is not decorated with ``@flow``.
    """
    location, func_name, _ = split_entrypoint(entrypoint)
    try:
        loaded = import_object(entrypoint)
    except AttributeError as exc:
        raise MissingFlowError(
            f"Flow function with name {func_name!r} not found in {location!r}. "
            "Check the spelling of the entrypoint."
        ) from exc
    if not isinstance(loaded, flow_type):
        raise MissingFlowError(
            f"Function with name {func_name!r} is not a flow. Make sure that it is "
            "decorated with '@flow'."
        )
    return loaded

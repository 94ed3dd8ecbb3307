"""Result persistence: write a run's return value to storage, and read it back.

Results stay in memory by default. A flow persists them when asked (``persist_result=True``, or a
``result_storage``/``result_serializer`` given), so a result outlives the process and a large one
need not travel through the service (gRPC refuses messages over 4 MiB by default).

Storage is anything with ``write_path(path, content) -> str`` and ``read_path(path) -> bytes``
(the same two methods Prefect's file-system blocks have); `LocalFileSystem` is the built-in one.
A serializer is anything with ``dumps(obj) -> bytes`` and ``loads(blob) -> obj`` (see
`headwater._serializers` for the built-in ones and their names).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from headwater._serializers import (
    DEFAULT_SERIALIZER,
    CloudPickleSerializer,
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    resolve_serializer,
    serializer_name,
    validate_serializer,
)
from headwater.exceptions import MissingResult, clause

if TYPE_CHECKING:
    import json
    from pathlib import Path

# pickle, json, tempfile, uuid and pathlib are imported where they are used: every flow
# definition imports this module, and most never persist a result.

__all__ = [
    "DEFAULT_SERIALIZER",
    "MAX_INLINE_RESULT_BYTES",
    "CloudPickleSerializer",
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "LocalFileSystem",
    "PickleSerializer",
    "ResultReference",
    "ResultStorage",
    "Serializer",
    "default_storage_basepath",
    "format_storage_key",
    "inline_json",
    "load_result",
    "persist_result",
    "resolve_serializer",
    "resolve_storage",
    "serializer_name",
    "validate_serializer",
]

#: Results whose JSON text is at least this long are not sent inline: they would bloat every
#: stored state and, past 4 MiB, be refused by gRPC. Persist them instead.
MAX_INLINE_RESULT_BYTES = 64 * 1024


#: One strict encoder for every inline result (``json.dumps`` with arguments builds one per
#: call); made on first use, as importing ``json`` is left to the first result.
_strict_json: json.JSONEncoder | None = None


def inline_json(value: Any) -> str | None:
    """The result as inline JSON text, or None when it is not JSON-able or too large to send.

    Only values that the standard library encodes as they are qualify (no NaN, no custom
    types), so any language reads back exactly what the flow returned.
    """
    if type(value) is int:  # the most common small result: its JSON text is its repr
        try:
            digits = repr(value)
        except ValueError:  # too many digits to turn into text (sys.get_int_max_str_digits)
            return None
        return digits if len(digits) < MAX_INLINE_RESULT_BYTES else None
    global _strict_json
    encoder = _strict_json
    if encoder is None:
        import json

        encoder = _strict_json = json.JSONEncoder(allow_nan=False)
    try:
        text: str = encoder.encode(value)
    except (TypeError, ValueError, RecursionError):
        return None
    if len(text) >= MAX_INLINE_RESULT_BYTES:  # ensure_ascii: characters are bytes
        return None
    return text


@runtime_checkable
class ResultStorage(Protocol):
    """Somewhere results can be written to and read back from by key."""

    def write_path(self, path: str, content: bytes) -> str: ...

    def read_path(self, path: str) -> bytes: ...


def default_storage_basepath() -> Path:
    """``$HEADWATER_HOME/storage``, from the SDK's settings object when it exists."""
    from pathlib import Path

    try:
        from headwater._settings import get_settings
    except ModuleNotFoundError as exc:
        if exc.name != "headwater._settings":
            raise
        # Settings not written yet: read the one variable we need, with its documented default.
        home = Path(os.environ.get("HEADWATER_HOME") or "~/.headwater").expanduser()
    else:
        home = Path(get_settings().home).expanduser()
    return home / "storage"


def _path_from_location(location: str | os.PathLike[str]) -> Path:
    """A directory path from a plain path or a ``file://`` URI."""
    from pathlib import Path

    text = os.fspath(location)
    if text.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(
                f"Result storage {text!r} names host {parsed.netloc!r}; only local file:// "
                "URIs (file:///path/to/dir) are supported."
            )
        text = url2pathname(parsed.path)
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ValueError(
            f"Result storage {text!r} uses the {scheme!r} scheme, which this release does not "
            "support. Give a local directory path or a file:// URI, or pass a storage object "
            "with read_path() and write_path()."
        )
    return Path(text).expanduser().absolute()


class LocalFileSystem:
    """Result storage in a local directory.

    Args:
        basepath: The directory (path or ``file://`` URI); ``None`` means
            ``$HEADWATER_HOME/storage``, resolved when first used.
    """

    def __init__(self, basepath: str | os.PathLike[str] | None = None) -> None:
        self._basepath = None if basepath is None else _path_from_location(basepath)

    @property
    def basepath(self) -> Path:
        """The directory results are written under."""
        if self._basepath is None:
            self._basepath = default_storage_basepath().absolute()
        return self._basepath

    def _resolve(self, path: str) -> Path:
        from pathlib import Path

        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.basepath / candidate

    def write_path(self, path: str, content: bytes) -> str:
        """Write ``content`` at ``path`` (relative to the base path) atomically.

        The bytes go to a temporary file in the same directory that is then renamed over the
        target, so a reader never sees half a result, even if the writer dies midway.

        Returns:
            The absolute path written, which `read_path` accepts as is.
        """
        import tempfile

        target = self._resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return str(target)

    def read_path(self, path: str) -> bytes:
        """Return the bytes stored at ``path`` (absolute, or relative to the base path)."""
        return self._resolve(path).read_bytes()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalFileSystem) and self.basepath == other.basepath

    def __hash__(self) -> int:
        return hash(self.basepath)

    def __repr__(self) -> str:
        shown = "default" if self._basepath is None else str(self._basepath)
        return f"LocalFileSystem(basepath={shown!r})"


def validate_storage(storage: Any) -> None:
    """Raise now, at flow definition, for result storage that could never work.

    Raises:
        ValueError: A string with an unsupported URI scheme.
        TypeError: Neither a string nor an object with ``read_path``/``write_path``.
    """
    if storage is None:
        return
    if isinstance(storage, str | os.PathLike):
        _path_from_location(storage)
        return
    if not (
        callable(getattr(storage, "write_path", None))
        and callable(getattr(storage, "read_path", None))
    ):
        raise TypeError(
            "result_storage must be a directory path, a file:// URI, or a storage object with "
            f"write_path() and read_path(); got {type(storage).__name__}."
        )


def resolve_storage(storage: Any) -> ResultStorage:
    """Return a storage object for a path, a ``file://`` URI, an object, or None (default)."""
    if storage is None:
        return LocalFileSystem()
    if isinstance(storage, str | os.PathLike):
        return LocalFileSystem(storage)
    validate_storage(storage)
    return storage  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ResultReference:
    """Where a persisted result lives and how to decode it.

    Attributes:
        storage_key: The key the storage returned when writing; for `LocalFileSystem` the
            absolute file path, so the reference alone is enough to read it back.
        serializer: The serializer's name (``"pickle"``, ``"cloudpickle"``, ``"json"``) or the
            ``module:QualName`` of a custom one.
        storage: The storage object that wrote it, when it is not a local file system; kept in
            memory only (it is not compared, and it is not sent to the service).
    """

    storage_key: str
    serializer: str
    storage: Any = field(default=None, compare=False, repr=False)
    serializer_object: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, str]:
        """The JSON-able form sent to the service and to other languages."""
        return {"storage_key": self.storage_key, "serializer": self.serializer}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultReference:
        """Rebuild a reference from `to_dict` output."""
        return cls(storage_key=str(data["storage_key"]), serializer=str(data["serializer"]))


def format_storage_key(template: str, parameters: dict[str, Any], **names: Any) -> str:
    """The key a task's ``result_storage_key`` template names for one run, as Prefect formats it.

    The template is a `str.format` string with ``parameters`` (the task's inputs by name) and
    ``names`` (the engine passes the `headwater.runtime` modules ``flow_run`` and ``task_run``):
    ``"{parameters[day]}.json"``, ``"{flow_run.name}/{task_run.name}.pkl"``.

    Raises:
        ValueError: The template names something that does not exist; the run then fails with
            this message.
    """
    try:
        key = template.format(**names, parameters=parameters)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"result_storage_key {template!r} cannot be formatted ({type(exc).__name__}: "
            f"{exc}). It may use {{parameters[NAME]}} for the task's inputs "
            f"({', '.join(sorted(parameters)) or 'none'}), and {{flow_run.ATTR}} or "
            "{task_run.ATTR} from headwater.runtime."
        ) from None
    if not key:
        raise ValueError(f"result_storage_key {template!r} formats to an empty key.")
    return key


def persist_result(
    value: Any,
    storage: Any = None,
    serializer: Any = None,
    *,
    key: str | None = None,
) -> ResultReference:
    """Serialize ``value`` and write it to ``storage``.

    Args:
        value: The value to persist.
        storage: A directory path, ``file://`` URI, storage object, or None for
            ``$HEADWATER_HOME/storage``.
        serializer: ``"pickle"``, ``"cloudpickle"``, ``"json"``, a serializer object, or None
            for `DEFAULT_SERIALIZER`.
        key: The key to write under (relative to the storage root); a fresh random one when
            None. A fixed key lets a cache reuse one stored result.

    Returns:
        A reference that `load_result` accepts.
    """
    import uuid

    resolved_storage = resolve_storage(storage)
    resolved_serializer = resolve_serializer(serializer)
    blob = resolved_serializer.dumps(value)
    storage_key = resolved_storage.write_path(key or uuid.uuid4().hex, blob)
    name = serializer_name(serializer if serializer is not None else resolved_serializer)
    return ResultReference(
        storage_key=str(storage_key),
        serializer=name,
        storage=None if isinstance(resolved_storage, LocalFileSystem) else resolved_storage,
        serializer_object=None if isinstance(serializer, str | None) else resolved_serializer,
    )


def load_result(ref: ResultReference, storage: Any = None) -> Any:
    """Read a persisted result back.

    Args:
        ref: The reference `persist_result` returned (or one rebuilt from the service).
        storage: The storage to read from when the reference does not carry one; None means
            the local file system.

    Raises:
        MissingResult: Nothing is stored under the reference's key any more.
    """
    store = resolve_storage(storage if storage is not None else ref.storage)
    serializer = ref.serializer_object or resolve_serializer(ref.serializer)
    try:
        blob = store.read_path(ref.storage_key)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise MissingResult(
            f"The result stored at {ref.storage_key!r} (serializer {ref.serializer!r}) no "
            "longer exists. It may have been deleted, or written on another machine; run the "
            "flow again to produce it, or point result storage at shared storage."
        ) from exc
    except OSError as exc:
        raise MissingResult(
            f"The result stored at {ref.storage_key!r} cannot be read ({clause(exc)}). Check "
            "that this process may read the result storage."
        ) from exc
    try:
        return serializer.loads(blob)
    except Exception as exc:
        raise MissingResult(
            f"The result stored at {ref.storage_key!r} cannot be decoded with serializer "
            f"{ref.serializer!r} ({type(exc).__name__}: {clause(exc)}). The file was changed "
            "after it was written, or needs a package this process lacks (install it, or "
            "load the result where it was written)."
        ) from exc

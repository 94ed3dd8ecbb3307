"""Result serializers: how a persisted value becomes bytes, and what name a reference records.

A persisted result's reference records its serializer by name, so that another process (or
another language) can decode the file with nothing else to go on. The built-in names are
Prefect's: ``"pickle"`` (cloudpickle unless ``picklelib="pickle"``), ``"json"``, and
``"compressed/<name>"`` for any of them compressed; ``"cloudpickle"`` is kept as a name of its
own. Any other object with ``dumps``/``loads`` is recorded by its import path
(``module:QualName``) and rebuilt with no arguments to load.

A compressed file is decompressed by its leading bytes (xz, zlib, bzip2 or gzip), not by the
library named when it was written: a reference records only ``compressed/<name>``, and a later
process must still read a file written with ``compressionlib="zlib"``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from headwater.exceptions import clause

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "DEFAULT_SERIALIZER",
    "CloudPickleSerializer",
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "resolve_serializer",
    "serializer_name",
    "validate_serializer",
]

#: The serializer used when a flow persists results without naming one. cloudpickle handles
#: lambdas and classes defined in scripts, which plain pickle refuses.
DEFAULT_SERIALIZER = "cloudpickle"

#: The prefix of a compressed serializer's name: ``"compressed/json"``.
COMPRESSED = "compressed/"

_PICKLE_LIBRARIES = ("cloudpickle", "pickle")

#: Leading bytes of each standard format `CompressedSerializer` writes, and the module that
#: reads it.
_COMPRESSION_MAGIC = (
    (b"\xfd7zXZ\x00", "lzma"),
    (b"BZh", "bz2"),
    (b"\x1f\x8b", "gzip"),
    (b"\x78", "zlib"),  # a zlib stream's first byte (deflate, 32 KiB window): checked last
)

#: The keyword each standard-library compressor takes its level as.
_LEVEL_KEYWORDS = {
    "lzma": "preset",
    "zlib": "level",
    "bz2": "compresslevel",
    "gzip": "compresslevel",
}


@runtime_checkable
class Serializer(Protocol):
    """Turns a value into bytes and back."""

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, blob: bytes) -> Any: ...


class PickleSerializer:
    """Pickle streams, written by cloudpickle (the default, as Prefect's) or plain pickle.

    cloudpickle also stores lambdas, closures and classes defined in scripts; the standard
    library's pickle (``picklelib="pickle"``) only importable objects. Both write streams that
    ``pickle.loads`` reads, so the recorded name is ``"pickle"`` either way.

    Args:
        picklelib: ``"cloudpickle"`` or ``"pickle"``.

    Raises:
        ValueError: Another library: pass an object with ``dumps``/``loads`` for it instead.
    """

    name = "pickle"

    def __init__(self, picklelib: str = "cloudpickle") -> None:
        if picklelib not in _PICKLE_LIBRARIES:
            raise ValueError(
                f"picklelib {picklelib!r} is not supported; use 'cloudpickle' or 'pickle', or "
                "pass result_serializer an object with dumps() and loads() for another library."
            )
        self.picklelib = picklelib

    def dumps(self, obj: Any) -> bytes:
        import pickle

        if self.picklelib == "pickle":
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        import cloudpickle  # imported here: loading it costs time most runs never need

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]

    def loads(self, blob: bytes) -> Any:
        import pickle

        return pickle.loads(blob)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(picklelib={self.picklelib!r})"


class CloudPickleSerializer(PickleSerializer):
    """cloudpickle, under the name ``"cloudpickle"`` (the default serializer's)."""

    name = "cloudpickle"

    def __init__(self) -> None:
        super().__init__("cloudpickle")


class JSONSerializer:
    """JSON text, readable from any language; values that JSON lacks are converted.

    Dates, UUIDs, sets, pydantic models and similar are stored in their JSON form (a date
    becomes a string), so they load back as plain JSON values, not as the original types.

    Args:
        jsonlib: The module that encodes and decodes (``"json"``; ``"orjson"`` when installed).
        dumps_kwargs: Extra keyword arguments for its ``dumps`` (``{"indent": 2}``).
        loads_kwargs: Extra keyword arguments for its ``loads``; used by this object only: a
            reference records ``"json"``, and another process decodes with plain ``json``.
    """

    name = "json"

    def __init__(
        self,
        jsonlib: str = "json",
        dumps_kwargs: dict[str, Any] | None = None,
        loads_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.jsonlib = jsonlib
        self._library = _library(jsonlib, ("dumps", "loads"), "jsonlib")
        self.dumps_kwargs = dict(dumps_kwargs or {})
        self.loads_kwargs = dict(loads_kwargs or {})
        for key in ("default", "object_hook"):
            if key in self.dumps_kwargs or key in self.loads_kwargs:
                raise ValueError(
                    f"JSONSerializer does not take {key!r}: values JSON lacks are converted to "
                    "their JSON form. Pass an object with dumps() and loads() for your own."
                )

    def dumps(self, obj: Any) -> bytes:
        try:
            return self._encode(obj)
        except (TypeError, ValueError):
            from headwater._parameters import jsonable

            try:
                return self._encode(jsonable(obj))
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"The result ({type(obj).__name__}) cannot be stored as JSON: {clause(exc)}. "
                    "Use result_serializer='cloudpickle' for Python objects."
                ) from exc

    def _encode(self, obj: Any) -> bytes:
        if self.jsonlib == "json":
            text: str | bytes = self._library.dumps(obj, allow_nan=False, **self.dumps_kwargs)
        else:
            text = self._library.dumps(obj, **self.dumps_kwargs)
        return text.encode() if isinstance(text, str) else text

    def loads(self, blob: bytes) -> Any:
        return self._library.loads(blob, **self.loads_kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(jsonlib={self.jsonlib!r})"


class CompressedSerializer:
    """Another serializer's bytes, compressed (lzma by default, as Prefect's).

    Args:
        serializer: The serializer that makes the bytes: a name (``"pickle"``, ``"json"``...)
            or an object with ``dumps``/``loads``.
        compressionlib: ``"lzma"``, ``"zlib"``, ``"bz2"`` or ``"gzip"``; any other importable
            module with ``compress``/``decompress`` also writes, but only this object reads it.
        level: The compression level (lzma's preset, the others' level), or None for the
            library's default.

    Raises:
        ValueError: An unknown serializer name, a compression module that cannot be imported
            or lacks ``compress``/``decompress``, or a level for a module that takes none.
    """

    def __init__(
        self,
        serializer: str | Serializer = "pickle",
        compressionlib: str = "lzma",
        level: int | None = None,
    ) -> None:
        self.serializer: Serializer = resolve_serializer(serializer)
        self.compressionlib = compressionlib
        self._library = _library(compressionlib, ("compress", "decompress"), "compressionlib")
        self.level = level
        if level is not None and compressionlib not in _LEVEL_KEYWORDS:
            raise ValueError(
                f"level is supported for {', '.join(sorted(_LEVEL_KEYWORDS))}, not for "
                f"compressionlib {compressionlib!r}."
            )

    def dumps(self, obj: Any) -> bytes:
        blob = self.serializer.dumps(obj)
        if self.level is None:
            compressed: bytes = self._library.compress(blob)
        else:
            compressed = self._library.compress(
                blob, **{_LEVEL_KEYWORDS[self.compressionlib]: self.level}
            )
        return compressed

    def loads(self, blob: bytes) -> Any:
        return self.serializer.loads(self._decompress(blob))

    def _decompress(self, blob: bytes) -> bytes:
        """The bytes ``blob`` compresses, by whichever standard format it starts with."""
        if self.compressionlib not in _LEVEL_KEYWORDS:  # a module of the user's: it wrote it
            return self._library.decompress(blob)  # type: ignore[no-any-return]
        for magic, module in _COMPRESSION_MAGIC:
            if blob.startswith(magic):
                return importlib.import_module(module).decompress(blob)  # type: ignore[no-any-return]
        return self._library.decompress(blob)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(serializer={self.serializer!r}, "
            f"compressionlib={self.compressionlib!r})"
        )


class CompressedPickleSerializer(CompressedSerializer):
    """`PickleSerializer` (cloudpickle), compressed: the name ``"compressed/pickle"``."""

    def __init__(self, compressionlib: str = "lzma", level: int | None = None) -> None:
        super().__init__("pickle", compressionlib, level)


class CompressedJSONSerializer(CompressedSerializer):
    """`JSONSerializer`, compressed: the name ``"compressed/json"``."""

    def __init__(self, compressionlib: str = "lzma", level: int | None = None) -> None:
        super().__init__("json", compressionlib, level)


_BUILTIN_SERIALIZERS: dict[str, type[PickleSerializer | JSONSerializer]] = {
    "pickle": PickleSerializer,
    "cloudpickle": CloudPickleSerializer,
    "json": JSONSerializer,
}

_COMPRESSED_TYPES = (CompressedSerializer, CompressedPickleSerializer, CompressedJSONSerializer)


def _library(name: str, functions: tuple[str, ...], option: str) -> ModuleType:
    """The module ``name``, which must have ``functions``; a clear ValueError otherwise."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"{option} {name!r} cannot be imported: {clause(exc)}.") from exc
    missing = [function for function in functions if not callable(getattr(module, function, None))]
    if missing:
        raise ValueError(f"{option} {name!r} has no {' or '.join(missing)}() function.")
    return module


def validate_serializer(serializer: Any) -> None:
    """Raise now, at flow definition, for a serializer that could never work.

    Raises:
        ValueError: An unknown serializer name.
        TypeError: An object without ``dumps`` and ``loads``.
    """
    if serializer is None:
        return
    if isinstance(serializer, str):
        name = serializer.removeprefix(COMPRESSED)
        if name in _BUILTIN_SERIALIZERS or ":" in name:
            return
        raise ValueError(
            f"Unknown result serializer {serializer!r}. Use one of "
            f"{', '.join(repr(name) for name in _BUILTIN_SERIALIZERS)}, one of those as "
            "'compressed/NAME', an object with dumps()/loads(), or an import path "
            "'package.module:ClassName'."
        )
    if not (
        callable(getattr(serializer, "dumps", None))
        and callable(getattr(serializer, "loads", None))
    ):
        raise TypeError(
            f"result_serializer must be a serializer name or an object with dumps() and "
            f"loads(); got {type(serializer).__name__}."
        )


def resolve_serializer(serializer: str | Serializer | None) -> Serializer:
    """Return a serializer object for a name, an import path, an object, or None (default).

    Raises:
        ValueError: The name is neither built in nor an importable ``module:Class`` path.
    """
    if serializer is None:
        serializer = DEFAULT_SERIALIZER
    if not isinstance(serializer, str):
        validate_serializer(serializer)
        return serializer
    if serializer.startswith(COMPRESSED):
        validate_serializer(serializer)
        return CompressedSerializer(serializer.removeprefix(COMPRESSED))
    builtin = _BUILTIN_SERIALIZERS.get(serializer)
    if builtin is not None:
        return builtin()
    if ":" in serializer:
        module_name, _, qualname = serializer.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"Cannot import the result serializer {serializer!r}: {clause(exc)}. Install the "
                "package that defines it, or load the result in the process that wrote it."
            ) from exc
        resolved = target() if isinstance(target, type) else target
        validate_serializer(resolved)
        return resolved  # type: ignore[no-any-return]
    validate_serializer(serializer)  # raises with the list of valid names
    raise AssertionError("unreachable")


def serializer_name(serializer: Any) -> str:
    """The name a reference records: a built-in name (``compressed/`` for a compressed one),
    or ``module:QualName`` for any other object."""
    if serializer is None:
        return DEFAULT_SERIALIZER
    if isinstance(serializer, str):
        return serializer
    if type(serializer) in _COMPRESSED_TYPES:
        return COMPRESSED + serializer_name(serializer.serializer)
    name = getattr(serializer, "name", None)
    if (
        isinstance(name, str)
        and name in _BUILTIN_SERIALIZERS
        and isinstance(serializer, _BUILTIN_SERIALIZERS[name])
    ):
        return name
    cls = type(serializer)
    return f"{cls.__module__}:{cls.__qualname__}"

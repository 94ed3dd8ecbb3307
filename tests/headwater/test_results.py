"""Result persistence on the real local file system."""

from __future__ import annotations

import datetime
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from headwater._results import (
    DEFAULT_SERIALIZER,
    CloudPickleSerializer,
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    LocalFileSystem,
    PickleSerializer,
    ResultReference,
    default_storage_basepath,
    format_storage_key,
    load_result,
    persist_result,
    resolve_serializer,
    resolve_storage,
    serializer_name,
)
from headwater.exceptions import MissingResult


class Reversed:
    """A custom serializer: JSON text, reversed (so it cannot be mistaken for plain JSON)."""

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj).encode()[::-1]

    def loads(self, blob: bytes) -> Any:
        return json.loads(blob[::-1])


class MemoryStorage:
    """A custom storage object with the two methods result storage needs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write_path(self, path: str, content: bytes) -> str:
        key = f"mem/{path}"
        self.files[key] = content
        return key

    def read_path(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point HEADWATER_HOME at a temporary directory for the default storage."""
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    reset = _settings_reset()
    reset()
    yield tmp_path / "home"
    reset()


def _settings_reset() -> Any:
    try:
        from headwater._settings import reset_settings
    except ImportError:  # settings not written yet: the env var is read directly
        return lambda: None
    return reset_settings


class TestSerializers:
    @pytest.mark.parametrize(
        "name", ["pickle", "cloudpickle", "json", "compressed/pickle", "compressed/json"]
    )
    def test_builtin_round_trip(self, name: str) -> None:
        serializer = resolve_serializer(name)
        value = {"a": [1, 2, 2**80], "b": "text", "c": None}
        blob = serializer.dumps(value)
        assert isinstance(blob, bytes)
        assert serializer.loads(blob) == value
        assert serializer_name(serializer) == name

    def test_default_serializer(self) -> None:
        assert DEFAULT_SERIALIZER == "cloudpickle"
        assert isinstance(resolve_serializer(None), CloudPickleSerializer)

    def test_cloudpickle_handles_lambdas(self) -> None:
        serializer = CloudPickleSerializer()
        restored = serializer.loads(serializer.dumps(lambda x: x + 1))
        assert restored(1) == 2
        with pytest.raises((pickle.PicklingError, AttributeError)):
            PickleSerializer(picklelib="pickle").dumps(lambda x: x)

    def test_pickle_is_cloudpickle_unless_told_as_in_prefect(self) -> None:
        # Prefect's "pickle" (and PickleSerializer()) write with cloudpickle: a closure ports.
        for serializer in (resolve_serializer("pickle"), PickleSerializer()):
            assert serializer.loads(serializer.dumps(lambda x: x * 3))(2) == 6
            assert serializer_name(serializer) == "pickle"
        plain = PickleSerializer(picklelib="pickle")
        assert serializer_name(plain) == "pickle"  # both streams are read by pickle.loads
        assert pickle.loads(plain.dumps({"a": 1})) == {"a": 1}
        with pytest.raises(ValueError, match="picklelib 'dill' is not supported"):
            PickleSerializer(picklelib="dill")

    @pytest.mark.parametrize(
        ("serializer", "name"),
        [
            ("compressed/pickle", "compressed/pickle"),
            ("compressed/json", "compressed/json"),
            (CompressedPickleSerializer(), "compressed/pickle"),
            (CompressedJSONSerializer(compressionlib="zlib", level=9), "compressed/json"),
            (CompressedSerializer("cloudpickle", compressionlib="bz2"), "compressed/cloudpickle"),
            (CompressedSerializer(JSONSerializer(), compressionlib="gzip"), "compressed/json"),
            (CompressedSerializer(Reversed()), f"compressed/{__name__}:Reversed"),
        ],
    )
    def test_compressed_round_trip_and_name(self, serializer: Any, name: str) -> None:
        resolved = resolve_serializer(serializer)
        value = {"rows": ["same text again"] * 200}
        blob = resolved.dumps(value)
        assert len(blob) < len(json.dumps(value)) / 10  # really compressed
        assert serializer_name(serializer) == name
        # What another process does: rebuild the serializer from the recorded name alone.
        assert resolve_serializer(name).loads(blob) == value

    def test_compressed_reads_every_standard_format_by_its_leading_bytes(self) -> None:
        lzma_blob = CompressedJSONSerializer().dumps([1, 2])
        assert lzma_blob.startswith(b"\xfd7zXZ\x00")
        reader = CompressedJSONSerializer(compressionlib="lzma")
        for library in ("lzma", "zlib", "bz2", "gzip"):
            blob = CompressedJSONSerializer(compressionlib=library).dumps([1, 2])
            assert reader.loads(blob) == [1, 2], library

    def test_compressed_refuses_what_could_never_work(self) -> None:
        with pytest.raises(ValueError, match="compressionlib 'no_such_zip' cannot be imported"):
            CompressedSerializer(compressionlib="no_such_zip")
        with pytest.raises(ValueError, match="compressionlib 'json' has no compress"):
            CompressedSerializer(compressionlib="json")
        with pytest.raises(ValueError, match="Unknown result serializer 'compressed/yaml'"):
            resolve_serializer("compressed/yaml")
        with pytest.raises(ValueError, match="Unknown result serializer 'yaml'"):
            CompressedSerializer("yaml")

    def test_json_options_as_prefect_takes_them(self) -> None:
        serializer = JSONSerializer(dumps_kwargs={"indent": 2, "sort_keys": True})
        assert serializer.dumps({"b": 1, "a": 2}) == b'{\n  "a": 2,\n  "b": 1\n}'
        with pytest.raises(ValueError, match="jsonlib 'no_such_json' cannot be imported"):
            JSONSerializer(jsonlib="no_such_json")
        with pytest.raises(ValueError, match="does not take 'default'"):
            JSONSerializer(dumps_kwargs={"default": str})

    def test_json_is_plain_json_text(self) -> None:
        assert JSONSerializer().dumps({"a": 1}) == b'{"a": 1}'

    def test_json_converts_rich_values(self) -> None:
        blob = JSONSerializer().dumps({"when": datetime.date(2026, 1, 2)})
        assert JSONSerializer().loads(blob) == {"when": "2026-01-02"}

    def test_json_refuses_unserializable_with_hint(self) -> None:
        with pytest.raises(ValueError, match="result_serializer='cloudpickle'"):
            JSONSerializer().dumps(object())

    def test_custom_object_is_used_as_is(self) -> None:
        serializer = Reversed()
        assert resolve_serializer(serializer) is serializer
        assert serializer_name(serializer) == f"{__name__}:Reversed"

    def test_import_path_is_resolved(self) -> None:
        resolved = resolve_serializer(f"{__name__}:Reversed")
        assert isinstance(resolved, Reversed)

    def test_unknown_name_raises(self) -> None:
        with pytest.raises(ValueError, match="Unknown result serializer 'yaml'"):
            resolve_serializer("yaml")

    def test_unimportable_path_raises(self) -> None:
        with pytest.raises(ValueError, match="Cannot import the result serializer"):
            resolve_serializer("no_such_module_xyz:Thing")


class TestLocalFileSystem:
    def test_write_and_read(self, tmp_path: Path) -> None:
        storage = LocalFileSystem(tmp_path)
        written = storage.write_path("sub/key", b"data")
        assert written == str(tmp_path / "sub" / "key")
        assert storage.read_path("sub/key") == b"data"
        assert storage.read_path(written) == b"data"

    def test_write_replaces_atomically_without_leftovers(self, tmp_path: Path) -> None:
        storage = LocalFileSystem(tmp_path)
        storage.write_path("key", b"first")
        storage.write_path("key", b"second")
        assert storage.read_path("key") == b"second"
        assert sorted(os.listdir(tmp_path)) == ["key"]

    def test_file_uri(self, tmp_path: Path) -> None:
        assert LocalFileSystem(tmp_path.as_uri()).basepath == tmp_path

    def test_tilde_is_expanded(self) -> None:
        assert LocalFileSystem("~/results").basepath == Path.home() / "results"

    def test_relative_path_is_made_absolute(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        assert LocalFileSystem("results").basepath == tmp_path / "results"

    def test_remote_uris_are_refused(self) -> None:
        with pytest.raises(ValueError, match="'s3' scheme"):
            LocalFileSystem("s3://bucket/x")
        with pytest.raises(ValueError, match="only local file:// URIs"):
            LocalFileSystem("file://otherhost/x")

    def test_default_basepath_is_headwater_home_storage(self, home: Path) -> None:
        assert default_storage_basepath() == home / "storage"
        assert LocalFileSystem().basepath == home / "storage"

    def test_missing_file_raises_file_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            LocalFileSystem(tmp_path).read_path("nothing")


class TestResolveStorage:
    def test_none_is_default_local(self) -> None:
        assert isinstance(resolve_storage(None), LocalFileSystem)

    def test_string_and_path(self, tmp_path: Path) -> None:
        assert resolve_storage(str(tmp_path)) == LocalFileSystem(tmp_path)
        assert resolve_storage(tmp_path) == LocalFileSystem(tmp_path)

    def test_object_passes_through(self) -> None:
        storage = MemoryStorage()
        assert resolve_storage(storage) is storage

    def test_wrong_type_raises(self) -> None:
        with pytest.raises(TypeError, match="write_path\\(\\) and read_path\\(\\)"):
            resolve_storage(42)


class TestPersistAndLoad:
    @pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "json"])
    def test_round_trip_on_local_files(self, tmp_path: Path, serializer: str) -> None:
        reference = persist_result({"n": 2**64}, storage=str(tmp_path), serializer=serializer)
        assert reference.serializer == serializer
        assert Path(reference.storage_key).parent == tmp_path
        assert load_result(reference) == {"n": 2**64}

    def test_default_storage_and_serializer(self, home: Path) -> None:
        reference = persist_result([1, 2, 3])
        assert reference.serializer == "cloudpickle"
        assert Path(reference.storage_key).parent == home / "storage"
        assert load_result(reference) == [1, 2, 3]

    def test_fixed_key(self, tmp_path: Path) -> None:
        reference = persist_result("v", storage=tmp_path, serializer="json", key="cache/abc")
        assert reference.storage_key == str(tmp_path / "cache" / "abc")
        assert (tmp_path / "cache" / "abc").read_bytes() == b'"v"'

    def test_each_result_gets_its_own_key(self, tmp_path: Path) -> None:
        first = persist_result(1, storage=tmp_path)
        second = persist_result(1, storage=tmp_path)
        assert first.storage_key != second.storage_key

    def test_reference_alone_is_enough_for_local_files(self, tmp_path: Path) -> None:
        reference = persist_result("x", storage=tmp_path, serializer="pickle")
        rebuilt = ResultReference.from_dict(json.loads(json.dumps(reference.to_dict())))
        assert rebuilt == reference
        assert load_result(rebuilt) == "x"

    def test_custom_storage_and_serializer(self) -> None:
        storage, serializer = MemoryStorage(), Reversed()
        reference = persist_result({"a": 1}, storage=storage, serializer=serializer)
        assert reference.storage_key.startswith("mem/")
        assert reference.serializer == f"{__name__}:Reversed"
        assert load_result(reference) == {"a": 1}
        # Without the live objects, the import path and explicit storage still work.
        bare = ResultReference.from_dict(reference.to_dict())
        assert load_result(bare, storage=storage) == {"a": 1}

    def test_missing_result_names_the_key_and_what_to_do(self, tmp_path: Path) -> None:
        reference = persist_result(1, storage=tmp_path, serializer="pickle")
        Path(reference.storage_key).unlink()
        with pytest.raises(MissingResult) as info:
            load_result(reference)
        assert reference.storage_key in str(info.value)
        assert "run the flow again" in str(info.value)
        assert isinstance(info.value.__cause__, FileNotFoundError)

    def test_an_unreadable_result_file_is_a_missing_result(self, tmp_path: Path) -> None:
        reference = persist_result(1, storage=tmp_path, serializer="json")
        Path(reference.storage_key).unlink()
        Path(reference.storage_key).mkdir()  # reading a directory: an OSError, not "missing"
        with pytest.raises(MissingResult, match="cannot be read") as info:
            load_result(reference)
        assert reference.storage_key in str(info.value)


class TestStorageKeyTemplates:
    def test_parameters_are_formatted_in(self) -> None:
        key = format_storage_key("{parameters[day]}/rows-{parameters[limit]}.json", {
            "day": "2026-11-30", "limit": 5,
        })  # fmt: skip
        assert key == "2026-11-30/rows-5.json"

    def test_runtime_attributes_are_formatted_in(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HEADWATER__RUNTIME__FLOW_RUN__NAME", "crimson-otter")
        monkeypatch.setenv("HEADWATER__RUNTIME__TASK_RUN__NAME", "load-0")
        from headwater.runtime import flow_run, task_run

        key = format_storage_key(
            "{flow_run.name}/{task_run.name}", {}, flow_run=flow_run, task_run=task_run
        )
        assert key == "crimson-otter/load-0"

    def test_an_unknown_name_says_what_the_template_may_use(self) -> None:
        with pytest.raises(ValueError, match=r"cannot be formatted \(KeyError: 'dya'\)") as info:
            format_storage_key("{parameters[dya]}", {"day": 1})
        assert "(day)" in str(info.value)
        with pytest.raises(ValueError, match="empty key"):
            format_storage_key("{parameters[x]}", {"x": ""})

"""The committed generated code must be exactly what `make protos` produces from protos/.

A stale stub is a silent contract bug (a field the server sends that the SDK cannot see), so the
suite regenerates everything into a temporary directory and compares bytes.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "python_client" / "headwater" / "v1"
IMAGE = ROOT / "protos" / "headwater.binpb"
SERVER_IMAGE = ROOT / "service" / "headwater_server" / "headwater.binpb"
GO_GENERATED = ROOT / "go_client" / "gen" / "headwater" / "v1"
TS_GENERATED = ROOT / "typescript_client" / "src" / "gen"


def test_generated_code_and_image_match_protos(tmp_path: Path) -> None:
    image = tmp_path / "headwater.binpb"
    server_image = tmp_path / "server-headwater.binpb"
    go_out = tmp_path / "go"
    ts_out = tmp_path / "ts"
    subprocess.run(
        [str(ROOT / "scripts" / "generate-protos"), str(tmp_path), str(image), str(server_image)],
        check=True,
        capture_output=True,
        env={**os.environ, "GO_OUT": str(go_out), "TS_OUT": str(ts_out)},
    )
    _assert_same_files(tmp_path / "headwater" / "v1", GENERATED, "*_pb2*")
    assert image.read_bytes() == IMAGE.read_bytes(), (
        "protos/headwater.binpb is stale: run `make protos` and commit it"
    )
    assert server_image.read_bytes() == SERVER_IMAGE.read_bytes(), (
        "service/headwater_server/headwater.binpb (the image reflection serves) is stale: run "
        "`make protos` and commit it"
    )
    _assert_same_files(go_out / "headwater" / "v1", GO_GENERATED, "*.go")
    fresh_ts, committed_ts = _tree(ts_out), _tree(TS_GENERATED)
    stale_ts = sorted(
        n for n in fresh_ts.keys() | committed_ts.keys() if fresh_ts.get(n) != committed_ts.get(n)
    )
    assert not stale_ts, (
        f"stale TypeScript code {stale_ts}: run `make protos` and commit the result"
    )


def _assert_same_files(fresh: Path, committed: Path, pattern: str) -> None:
    """The files matching ``pattern`` in ``fresh`` and ``committed`` are the same, byte for byte."""
    fresh_names = sorted(p.name for p in fresh.glob(pattern))
    committed_names = sorted(p.name for p in committed.glob(pattern))
    assert fresh_names, f"nothing was generated into {fresh}"
    assert fresh_names == committed_names, (
        f"generated files in {committed} differ: run `make protos` and commit"
    )
    stale = [n for n in fresh_names if not filecmp.cmp(fresh / n, committed / n, shallow=False)]
    assert not stale, f"stale generated code {stale}: run `make protos` and commit the result"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_proto_file_is_generated() -> None:
    protos = sorted(p.stem for p in (ROOT / "protos" / "headwater" / "v1").glob("*.proto"))
    generated = sorted(p.name.removesuffix("_pb2.py") for p in GENERATED.glob("*_pb2.py"))
    assert protos == generated
    go_generated = sorted(
        p.name.removesuffix(".pb.go")
        for p in GO_GENERATED.glob("*.pb.go")
        if not p.name.endswith("_grpc.pb.go")
    )
    assert protos == go_generated
    ts = sorted(
        p.name.removesuffix("_pb.ts") for p in (TS_GENERATED / "headwater" / "v1").glob("*")
    )
    assert protos == ts

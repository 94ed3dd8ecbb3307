"""A runner's spare process: a run handed to it runs from the claim, with the flow's file
loaded before the run existed when the runner serves one deployment, and loaded again when
the file changed since (`headwater._serve.spare`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import sdk_target
from headwater._deployment_records import Deployment
from headwater._serve.handoff import preload_entrypoint
from headwater._serve.runner import SPARE_PROCESSES
from headwater._serve.spare import Preloaded
from headwater.client import HeadwaterClient
from headwater.deployments import run_deployment
from headwater.exceptions import ObjectNotFound
from process_support import DEADLINE_SECONDS, kill, start, stop, until
from server_harness import ServerProcess

SERVED = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from headwater import flow
    from headwater.runtime import flow_run

    HERE = Path(__file__).parent
    VERSION = 1
    with (HERE / "imports.log").open("a") as log:
        log.write(f"{os.getpid()} {time.time()}\\n")


    @flow
    def version() -> None:
        (HERE / f"ran-{flow_run.id}").write_text(f"{os.getpid()} {VERSION}")


    if __name__ == "__main__":
        version.serve(os.environ["DEPLOYMENT_NAME"])
    """
)


def _imports(project: Path) -> list[tuple[int, float]]:
    """(pid, time) of each time the flow's file was run, in order."""
    lines = (project / "imports.log").read_text().split("\n")
    return [(int(pid), float(at)) for pid, at in (line.split() for line in lines if line)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "served.py").write_text(SERVED)
    return project


@pytest.mark.integration
def test_a_served_deployments_runs_use_its_flow_loaded_ahead_until_its_file_changes(
    sqlite_server: ServerProcess, project: Path, tmp_path: Path
) -> None:
    name = f"ahead-{uuid.uuid4().hex[:8]}"
    with sdk_target(tmp_path / "home", sqlite_server.address), HeadwaterClient() as client:
        served = start(project, sqlite_server, sys.executable, "served.py", DEPLOYMENT_NAME=name)
        try:

            def registered() -> bool:
                try:
                    client.get_deployment(f"version/{name}")
                except ObjectNotFound:
                    return False
                return True

            until(registered, "the deployment", served)
            # The first runs go to the spares started before any run; those started after
            # them know the deployment from the claims and load the flow's file ahead.
            warm_up = [
                run_deployment(f"version/{name}", timeout=DEADLINE_SECONDS)
                for _ in range(SPARE_PROCESSES)
            ]
            known = {served.pid, *(_ran_by(project, run.id) for run in warm_up)}
            loaded = _spares_loaded(project, known, served)
            created = time.time()
            ahead = run_deployment(f"version/{name}", timeout=DEADLINE_SECONDS)

            _spares_loaded(project, {*known, _ran_by(project, ahead.id)}, served)
            (project / "served.py").write_text(SERVED.replace("VERSION = 1", "VERSION = 2"))
            changed = run_deployment(f"version/{name}", timeout=DEADLINE_SECONDS)
        finally:
            output = stop(served)
            kill(served)

    assert ahead.state is not None and ahead.state.is_completed(), (ahead.state, output)
    ahead_pid = _ran_by(project, ahead.id)
    assert (project / f"ran-{ahead.id}").read_text() == f"{ahead_pid} 1"
    assert loaded[ahead_pid] < created
    assert [pid for pid, _ in _imports(project)].count(ahead_pid) == 1
    assert changed.state is not None and changed.state.is_completed(), (changed.state, output)
    changed_pid = _ran_by(project, changed.id)
    assert (project / f"ran-{changed.id}").read_text() == f"{changed_pid} 2"
    assert [pid for pid, _ in _imports(project)].count(changed_pid) == 2


def _ran_by(project: Path, flow_run_id: str) -> int:
    return int((project / f"ran-{flow_run_id}").read_text().split()[0])


def _spares_loaded(
    project: Path, known: set[int], served: subprocess.Popen[str]
) -> dict[int, float]:
    """When each waiting spare (a process not in ``known``) ran the flow's file, once all
    `SPARE_PROCESSES` have."""

    def loaded() -> dict[int, float]:
        return {pid: at for pid, at in _imports(project) if pid not in known}

    until(lambda: len(loaded()) == SPARE_PROCESSES, "the spares to load the flow", served)
    return loaded()


def _deployment(project: Path, **fields: object) -> Deployment:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "name": "d",
        "flow_id": str(uuid.uuid4()),
        "flow_name": "version",
        "entrypoint": "served.py:version",
        "path": str(project),
    }
    values.update(fields)
    return Deployment(**values)  # type: ignore[arg-type]


@pytest.fixture
def inside(project: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(project)
    try:
        yield
    finally:
        os.chdir(before)


def test_a_preloaded_flow_serves_its_deployment_while_its_files_are_unchanged(
    project: Path, inside: None
) -> None:
    entrypoint = preload_entrypoint(_deployment(project))
    assert entrypoint == f"{project}/served.py:version"
    preloaded = Preloaded.load(entrypoint)

    assert preloaded is not None and preloaded.flow.name == "version"
    assert preloaded.serves(_deployment(project))
    assert not preloaded.serves(_deployment(project, entrypoint="other.py:version"))
    stat = (project / "served.py").stat()
    os.utime(project / "served.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not preloaded.serves(_deployment(project))


def test_a_flow_cloned_per_run_or_failing_to_load_is_not_preloaded(
    project: Path, inside: None
) -> None:
    assert preload_entrypoint(_deployment(project, git_url="https://example.com/r.git")) is None
    assert preload_entrypoint(_deployment(project, entrypoint="")) is None
    (project / "broken.py").write_text("raise RuntimeError('no')\n")
    assert Preloaded.load(f"{project}/broken.py:version") is None

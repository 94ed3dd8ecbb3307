"""`Flow.from_source`, `Flow.deploy` and `headwater.deploy`, end to end on both databases: a
real git repository made here (cloned by URL ``file://``), a real deploying script, a real
``headwater worker start`` running the runs in subprocesses loaded from the code location."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import sdk_target
from headwater import deploy, flow
from headwater.client import HeadwaterClient
from headwater.deployments import run_deployment
from headwater.flows import Flow
from headwater.runner.storage import GitRepository
from process_support import DEADLINE_SECONDS, commit_all, git, start, stop
from server_harness import HEADWATER_CLI, ServerProcess

pytestmark = pytest.mark.integration

FLOWS = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from headwater import flow
    from headwater.runtime import flow_run

    VERSION = "{version}"


    @flow
    def greet(out: str, name: str = "world") -> str:
        # Where the run's process worked, and which version of this file it ran.
        Path(out, flow_run.id).write_text(f"{{VERSION}} {{name}} {{os.getcwd()}}")
        return f"hello {{name}}"
    """
)

DEPLOYING = textwrap.dedent(
    """
    import sys

    from headwater import flow

    source, pool, name = sys.argv[1:4]
    print("deployment id:", flow.from_source(source, "flows.py:greet").deploy(
        name, work_pool_name=pool
    ))
    """
)


@pytest.fixture
def client(server: ServerProcess, tmp_path: Path) -> Iterator[HeadwaterClient]:
    with sdk_target(tmp_path / "home", server.address), HeadwaterClient() as client:
        yield client


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with flows.py committed at "v1" (and "v2" left uncommitted)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch", "main")
    (repo / "flows.py").write_text(FLOWS.format(version="v1"))
    commit_all(repo, "v1")
    (repo / "flows.py").write_text(FLOWS.format(version="uncommitted"))
    return repo


@pytest.fixture
def pool(client: HeadwaterClient) -> str:
    return client.create_work_pool(f"pool-{uuid.uuid4().hex[:8]}").name


def _worker(server: ServerProcess, pool: str, cwd: Path) -> object:
    return start(cwd, server, str(HEADWATER_CLI), "worker", "start", "--pool", pool)


def _outcome(out: Path, run_id: str) -> list[str]:
    return (out / run_id).read_text().split()


def test_a_flow_deployed_from_a_git_repository_runs_on_a_worker_from_a_clone(
    server: ServerProcess, client: HeadwaterClient, repo: Path, pool: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "deploying.py").write_text(DEPLOYING)
    url = f"file://{repo}"
    deploying = start(elsewhere, server, sys.executable, "deploying.py", url, pool, "from-git")
    printed, _ = deploying.communicate(timeout=DEADLINE_SECONDS)
    assert deploying.returncode == 0, printed
    assert f"$ headwater worker start --pool '{pool}'" in printed
    assert "$ headwater deployment run 'greet/from-git'" in printed
    deployment = client.get_deployment("greet/from-git")
    assert f"deployment id: {deployment.id}" in printed
    assert (deployment.git_url, deployment.entrypoint, deployment.path) == (
        url,
        "flows.py:greet",
        None,
    )
    assert deployment.work_pool_name == pool

    out = tmp_path / "out"
    out.mkdir()
    worker = start(elsewhere, server, str(HEADWATER_CLI), "worker", "start", "--pool", pool)
    try:
        run = run_deployment(
            deployment.id,
            parameters={"out": str(out), "name": "git"},
            timeout=DEADLINE_SECONDS,
        )
    finally:
        output = stop(worker)
    assert run.state is not None and run.state.is_completed(), (run.state, output)
    version, name, cwd = _outcome(out, run.id)
    # The committed file ran (not the working tree's), in a clone (not the repository).
    assert (version, name) == ("v1", "git")
    assert Path(cwd).name.startswith("headwater-source-")
    assert not Path(cwd).exists()  # the clone is removed when the run's process exits


def test_a_branch_and_a_commit_of_a_repository_can_be_deployed(
    server: ServerProcess, client: HeadwaterClient, repo: Path, pool: str, tmp_path: Path
) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "-b", "next")
    (repo / "flows.py").write_text(FLOWS.format(version="v2"))
    commit_all(repo, "v2")
    git(repo, "checkout", "--quiet", "main")
    (repo / "flows.py").write_text(FLOWS.format(version="v3"))
    commit_all(repo, "v3 on main")
    url = f"file://{repo}"

    on_branch = Flow.from_source(GitRepository(url, branch="next"), "flows.py:greet")
    at_commit = Flow.from_source(GitRepository(url, commit_sha=first), "flows.py:greet")
    branch_id = on_branch.deploy("next", work_pool_name=pool, print_next_steps=False)
    commit_id = at_commit.deploy("first", work_pool_name=pool, print_next_steps=False)
    assert client.get_deployment(str(branch_id)).git_branch == "next"
    assert client.get_deployment(str(commit_id)).git_commit == first

    out = tmp_path / "out"
    out.mkdir()
    worker = start(tmp_path, server, str(HEADWATER_CLI), "worker", "start", "--pool", pool)
    try:
        runs = [
            run_deployment(d, parameters={"out": str(out)}, timeout=DEADLINE_SECONDS)
            for d in (branch_id, commit_id)
        ]
    finally:
        output = stop(worker)
    assert all(r.state is not None and r.state.is_completed() for r in runs), output
    assert [_outcome(out, r.id)[0] for r in runs] == ["v2", "v1"]


def test_a_flow_from_a_local_directory_runs_there_and_adeploy_awaits(
    server: ServerProcess, client: HeadwaterClient, repo: Path, pool: str, tmp_path: Path
) -> None:
    loaded = Flow.from_source(repo, "flows.py:greet")
    assert loaded.name == "greet"
    assert loaded(str(tmp_path), name="here") == "hello here"  # the working tree's version

    deployment_id = asyncio.run(loaded.adeploy("local", work_pool_name=pool, tags=["t"]))
    deployment = client.get_deployment(str(deployment_id))
    assert (deployment.path, deployment.entrypoint, deployment.tags) == (
        str(repo),
        "flows.py:greet",
        ("t",),
    )
    out = tmp_path / "out"
    out.mkdir()
    worker = start(tmp_path, server, str(HEADWATER_CLI), "worker", "start", "--pool", pool)
    try:
        run = run_deployment(deployment.id, parameters={"out": str(out)}, timeout=DEADLINE_SECONDS)
    finally:
        output = stop(worker)
    assert run.state is not None and run.state.is_completed(), output
    assert _outcome(out, run.id) == ["uncommitted", "world", str(repo)]


@flow
def here(x: int = 1) -> int:
    return x


def test_headwater_deploy_registers_several_deployments_on_a_pool(
    client: HeadwaterClient, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = deploy(
        here.to_deployment("one"),
        here.to_deployment("two", work_pool_name=pool, work_queue_name="fast"),
        work_pool_name=pool,
    )

    deployments = [client.get_deployment(str(i)) for i in ids]
    assert [d.full_name for d in deployments] == ["here/one", "here/two"]
    assert [(d.work_pool_name, d.work_queue_name) for d in deployments] == [
        (pool, "default"),
        (pool, "fast"),
    ]
    printed = capsys.readouterr().out
    assert f"$ headwater worker start --pool '{pool}'" in printed
    assert "here/one" in printed and "here/two" in printed


def test_deploying_to_a_pool_that_does_not_exist_says_how_to_create_it(
    client: HeadwaterClient,
) -> None:
    with pytest.raises(ValueError, match=r"Could not find work pool 'nowhere'.*work-pool create"):
        here.deploy("x", work_pool_name="nowhere")


def test_deploying_without_a_pool_or_with_an_image_is_refused(client: HeadwaterClient) -> None:
    with pytest.raises(ValueError, match="No work pool name provided"):
        here.deploy("x")
    with pytest.raises(ValueError, match="does not build, push or run images"):
        here.deploy("x", work_pool_name="local", image="registry/image:dev")
    with pytest.raises(TypeError, match=r"Flow.to_deployment\(\)"):
        deploy("here/x", work_pool_name="local")  # type: ignore[arg-type]


def test_a_source_that_cannot_be_used_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a directory nor a git URL"):
        Flow.from_source(tmp_path / "missing", "flows.py:greet")
    with pytest.raises(TypeError, match="Unsupported source type 'int'"):
        Flow.from_source(42, "flows.py:greet")
    with pytest.raises(ValueError, match=r"must be 'path/to/file\.py:flow_function'"):
        Flow.from_source(tmp_path, "flows.py")
    with pytest.raises(RuntimeError, match=r"Could not clone .*git said"):
        Flow.from_source(f"file://{tmp_path}/no-repo.git", "flows.py:greet")

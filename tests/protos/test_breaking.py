"""scripts/check-breaking runs `buf breaking` against main's previous commit, or against where a
branch left main; these tests build small git histories and see it pass and fail for real."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = "protos/headwater/v1/flows.proto"
REMOVED_FIELD = (
    "  // When the flow was first registered.\n  google.protobuf.Timestamp create_time = 4;\n"
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def check_breaking(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / "scripts" / "check-breaking")],
        env={**os.environ, "VENV_BIN": str(ROOT / ".venv" / "bin")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose main holds two commits of this checkout's protos and the script."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "check-breaking", repo / "scripts" / "check-breaking")
    shutil.copytree(ROOT / "protos", repo / "protos")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "first")
    (repo / "README").write_text("second\n")
    commit_all(repo, "second")
    return repo


def remove_a_field(repo: Path) -> None:
    path = repo / FLOWS
    text = path.read_text()
    assert REMOVED_FIELD in text
    path.write_text(text.replace(REMOVED_FIELD, ""))


def test_main_passes_when_its_last_commit_kept_the_contract(repo: Path) -> None:
    result = check_breaking(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_removed_field_fails_on_main_against_the_previous_commit(repo: Path) -> None:
    remove_a_field(repo)
    commit_all(repo, "drop Flow.create_time")
    result = check_breaking(repo)
    assert result.returncode != 0
    assert "create_time" in result.stdout + result.stderr


def test_a_branch_is_checked_against_where_it_left_main_and_so_is_a_fresh_clone(
    repo: Path, tmp_path: Path
) -> None:
    git(repo, "checkout", "-qb", "feature")
    remove_a_field(repo)
    commit_all(repo, "drop Flow.create_time")
    (repo / "README").write_text("later\n")
    commit_all(repo, "a later commit that changes no proto")
    assert check_breaking(repo).returncode != 0
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert git(clone, "branch", "--show-current") == "feature"
    result = check_breaking(clone)
    assert result.returncode != 0
    assert "create_time" in result.stdout + result.stderr


def test_uncommitted_changes_count(repo: Path) -> None:
    remove_a_field(repo)
    assert check_breaking(repo).returncode != 0

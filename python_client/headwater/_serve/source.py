"""Where a flow's code comes from: a local directory or a git repository (``Flow.from_source``).

A deployment records its code location so that whatever runs it later (a worker on another
machine, a serving process) can find the code: a directory is used as it is, a git repository
is cloned with the ``git`` program before each run. `GitRepository` and `LocalStorage` mirror
the objects of Prefect's ``prefect.runner.storage`` that ``from_source`` takes; a plain string
is read as a git URL when it looks like one, else as a directory.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GitRepository", "LocalStorage", "clone", "storage_from_source"]

# Strings that name a repository `git clone` fetches, rather than a directory.
_GIT_PREFIXES = ("https://", "http://", "ssh://", "git://", "git@", "file://")


@dataclass(frozen=True)
class GitRepository:
    """Code in a git repository, cloned before each run.

    Args:
        url: What ``git clone`` takes: ``https://github.com/org/repo.git``, ``file:///srv/repo``.
        branch: The branch or tag to check out; None means the repository's default branch.
        commit_sha: A commit to check out after cloning; None means the head of ``branch``.
    """

    url: str
    branch: str | None = None
    commit_sha: str | None = None

    def __post_init__(self) -> None:
        if not self.url.strip():
            raise ValueError("GitRepository needs a url to clone, e.g. 'https://host/repo.git'.")

    def location(self) -> dict[str, Any]:
        """The deployment fields that record this location."""
        return {"git_url": self.url, "git_branch": self.branch, "git_commit": self.commit_sha}


@dataclass(frozen=True)
class LocalStorage:
    """Code in a directory of the machine that runs the flow (made absolute)."""

    path: str

    def location(self) -> dict[str, Any]:
        """The deployment fields that record this location."""
        return {"path": self.path}


Storage = GitRepository | LocalStorage


def storage_from_source(source: str | Path | Storage) -> Storage:
    """The code location ``source`` names: a storage object as given, a git URL, or a directory.

    Raises:
        TypeError: ``source`` is none of those.
        ValueError: A directory that does not exist.
    """
    if isinstance(source, GitRepository | LocalStorage):
        return source
    if not isinstance(source, str | Path):
        raise TypeError(
            f"Unsupported source type {type(source).__name__!r}: give a git URL, a directory, "
            "or a headwater.runner.storage.GitRepository."
        )
    text = str(source)
    if text.startswith(_GIT_PREFIXES) or text.endswith(".git"):
        return GitRepository(url=text)
    directory = Path(text).expanduser().resolve()
    if not directory.is_dir():
        raise ValueError(
            f"Source {text!r} is neither a directory nor a git URL (https://, ssh://, git@, "
            "file://, or ending in .git)."
        )
    return LocalStorage(path=str(directory))


def clone(url: str, branch: str | None = None, commit: str | None = None) -> str:
    """Clone a repository into a new temporary directory (removed when this process exits).

    Only the newest commit is fetched unless ``commit`` names an older one.

    Raises:
        RuntimeError: ``git`` is not installed, or the clone or checkout failed (git's own
            message is included).
    """
    target = tempfile.mkdtemp(prefix="headwater-source-")
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    command = ["git", "clone", "--quiet"]
    if commit is None:
        command += ["--depth", "1"]
    if branch:
        command += ["--branch", branch]
    _git([*command, url, target], f"clone {url!r}")
    if commit:
        _git(["git", "-C", target, "checkout", "--quiet", commit], f"check out {commit!r}")
    return target


def _git(command: list[str], what: str) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError(
            f"Could not {what}: the 'git' program is not installed or not on PATH."
        ) from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()
        raise RuntimeError(f"Could not {what}: git said: {detail}") from None

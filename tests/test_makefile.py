"""`make install` rebuilds a virtualenv that belongs to another checkout, or whose python is broken.

The install stamp only tracks pyproject.toml, so a ``.venv`` copied from another clone (or left
behind when this clone moved) looked installed while its editable ``headwater`` pointed at the
other place. These tests build that state in a temporary copy of the Makefile and ask make,
with ``-n``, what it would do: the answer is decided by the same check a real ``make install``
runs, without the half minute a real reinstall takes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REBUILD = "rm -rf .venv"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def checkout_with_a_stamped_venv(tmp_path: Path, python: Path) -> Path:
    """A copy of what the install target reads, with a .venv whose stamp is up to date."""
    checkout = tmp_path / "clone"
    package = checkout / "python_client" / "headwater"
    package.mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", checkout / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    (package / "__init__.py").write_text("")
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(python)
    stamp = checkout / ".venv" / ".installed"
    stamp.touch()
    newer = (checkout / "pyproject.toml").stat().st_mtime + 10
    os.utime(stamp, (newer, newer))
    return checkout


def dry_run_install(checkout: Path, **env: str) -> str:
    result = subprocess.run(
        ["make", "-n", "install"],
        cwd=checkout,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_venv_whose_headwater_is_another_checkout_is_rebuilt(tmp_path: Path) -> None:
    # This interpreter's `headwater` is the real checkout, not the copy: a copied .venv.
    checkout = checkout_with_a_stamped_venv(tmp_path, Path(sys.executable))
    plan = dry_run_install(checkout)
    assert REBUILD in plan
    assert "pip install" in plan


def test_a_venv_whose_python_is_gone_is_rebuilt(tmp_path: Path) -> None:
    checkout = checkout_with_a_stamped_venv(tmp_path, tmp_path / "moved-away" / "python3")
    plan = dry_run_install(checkout)
    assert REBUILD in plan
    assert "-m venv .venv" in plan


def test_a_venv_that_belongs_here_is_left_alone(tmp_path: Path) -> None:
    checkout = checkout_with_a_stamped_venv(tmp_path, Path(sys.executable))
    # `headwater` now resolves to this copy's package, as an editable install of it would.
    plan = dry_run_install(checkout, PYTHONPATH=str(checkout / "python_client"))
    assert REBUILD not in plan
    assert "pip install" not in plan

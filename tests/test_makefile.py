"""The Makefile recreates a .venv made by another Python (or broken) instead of keeping it forever.

Checked with ``make -n`` (print the recipe, run nothing) in a copy of the repo's build files, around a
``.venv`` whose python reports another version or fails, with the install stamp already in place.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(folder: Path, *args: str) -> str:
    """``make`` in ``folder`` with this interpreter as ``PYTHON``; its standard output."""
    command = ["make", "--no-print-directory", "-C", str(folder), f"PYTHON={sys.executable}", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def repo_with_venv(tmp_path: Path, python_script: str | None) -> Path:
    """The build files and a .venv (installed stamp included) whose bin/python runs ``python_script``."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    if python_script is None:
        python.symlink_to(sys.executable)
    else:
        python.write_text(f"#!/bin/sh\n{python_script}\n")
        python.chmod(0o755)
    stamp = make(tmp_path, "--eval", "stamp-name: ; @echo $(STAMP)", "stamp-name").strip()
    (tmp_path / stamp).touch()
    return tmp_path


@pytest.mark.parametrize(
    "python_script",
    [pytest.param('echo "3.10"', id="another-python"), pytest.param("exit 1", id="broken")],
)
def test_a_venv_of_another_python_is_recreated(tmp_path, python_script):
    planned = make(repo_with_venv(tmp_path, python_script), "-n", "lint")
    assert "rm -rf .venv" in planned and "-m venv .venv" in planned


def test_a_venv_of_this_python_is_kept(tmp_path):
    planned = make(repo_with_venv(tmp_path, None), "-n", "lint")
    assert "-m venv" not in planned and "rm -rf .venv" not in planned

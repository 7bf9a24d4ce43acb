"""scripts/_venv.sh installs once per pyproject.toml, not on every scripts/dev or scripts/test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _source(project: Path, venv: Path) -> None:
    env = {**os.environ, "RISKGATE_VENV": str(venv), "EXTRAS": "dev"}
    subprocess.run(
        ["bash", "-c", f'source "{project}/scripts/_venv.sh"'],
        env=env, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip


def test_install_runs_again_only_when_pyproject_changes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "_venv.sh", project / "scripts")
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = venv / "bin" / "calls"
    fake_python = venv / "bin" / "python"  # an existing venv: pip install is all it runs
    fake_python.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    fake_python.chmod(0o755)

    _source(project, venv)
    _source(project, venv)
    assert calls.read_text().count("pip install") == 1
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    _source(project, venv)
    assert calls.read_text().count("pip install") == 2

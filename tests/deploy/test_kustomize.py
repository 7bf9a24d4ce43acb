"""The kustomize base and overlays: rendered by kubectl, validated like the chart, current
with the chart, and the example resources valid against the CRD schema."""

from __future__ import annotations

import base64
import filecmp
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from k8s_support import (
    CHART,
    ROOT,
    Doc,
    assert_locked_down,
    is_custom,
    kustomize,
    named,
    of_kind,
    validate_builtin,
    workloads,
)

from riskgate.auth.signing import SigningKeys
from riskgate.webhooks.crypto import KeyRing

K8S = ROOT / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
RENDERED = (
    "base/riskgate.yaml",
    "components/in-cluster-databases/databases.yaml",
    "components/monitoring/monitoring.yaml",
)


def test_overlays_dev_and_production_exist() -> None:
    assert {p.name for p in OVERLAYS} >= {"dev", "production"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_overlay_renders_valid_locked_down_objects(overlay: Path) -> None:
    docs = kustomize(overlay)
    assert validate_builtin(docs) > 10
    for doc in workloads(docs):
        assert_locked_down(doc)
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "Job", "NetworkPolicy"} <= kinds
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces <= {None, f"riskgate{'-dev' if overlay.name == 'dev' else ''}"}


def test_committed_manifests_are_what_the_chart_renders(tmp_path: Path) -> None:
    subprocess.run([ROOT / "scripts" / "render-k8s", tmp_path], check=True, capture_output=True)
    stale = [
        name for name in RENDERED if not filecmp.cmp(K8S / name, tmp_path / name, shallow=False)
    ]
    assert not stale, f"run scripts/render-k8s: {stale} differ from the chart"


def _crd_schemas() -> dict[tuple[str, str], Doc]:
    schemas: dict[tuple[str, str], Doc] = {}
    for path in (CHART / "files" / "crds").glob("*.riskgate.io.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api_version, crd["spec"]["names"]["kind"])] = version["schema"][
                "openAPIV3Schema"
            ]
    return schemas


def test_example_resources_match_the_crd_schema() -> None:
    schemas = _crd_schemas()
    examples = [d for d in kustomize(K8S / "examples") if is_custom(d)]
    assert examples
    for doc in examples:
        jsonschema.validate(doc, schemas[(doc["apiVersion"], doc["kind"])])


@pytest.mark.parametrize(
    ("kind", "spec"),
    [("WebhookSubscription", {"url": 1}), ("ApiClient", {"scopes": "score:write"})],
)
def test_the_crd_schema_refuses_a_broken_example(kind: str, spec: Doc) -> None:
    schema = _crd_schemas()[("riskgate.io/v1alpha1", kind)]
    broken = {"apiVersion": "riskgate.io/v1alpha1", "kind": kind, "spec": spec}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _decoded(doc: Doc) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}


def test_dev_overlay_credentials_fit_together_and_load(tmp_path: Path) -> None:
    docs = kustomize(K8S / "overlays" / "dev")
    passwords = _decoded(named(docs, "Secret", "riskgate-dev-databases"))
    urls = _decoded(named(docs, "Secret", "riskgate-database"))
    assert f":{passwords['app-password']}@riskgate-postgresql:" in urls["database-url"]
    assert f":{passwords['owner-password']}@" in urls["migration-database-url"]
    assert (
        passwords["redis-password"]
        in _decoded(named(docs, "Secret", "riskgate-redis"))["redis-url"]
    )
    pem = tmp_path / "key.pem"
    pem.write_text(_decoded(named(docs, "Secret", "riskgate-jwt"))["signing-key.pem"])
    SigningKeys.from_files(pem, None, issuer="riskgate", audience="riskgate-api")
    ring = _decoded(named(docs, "Secret", "riskgate-webhook-keys"))["encryption-keys"]
    assert KeyRing.parse(ring).configured
    assert {s["metadata"]["name"] for s in of_kind(docs, "Secret")} >= {
        "riskgate-operator-client",
        "riskgate-webhook-keys",
    }

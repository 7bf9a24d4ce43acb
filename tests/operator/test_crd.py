"""The CRD: its shape, every example validates, bad resources are refused by the schema or by
the CEL rules (evaluated for real with the `cel` library, see crd_rules)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from crd_rules import CRD_FILE, ROOT, admit, crd

EXAMPLES = sorted((ROOT / "k8s/examples").glob("webhooksubscription*.yaml"))
GOOD: dict[str, Any] = {
    "apiVersion": "riskgate.io/v1alpha1",
    "kind": "WebhookSubscription",
    "metadata": {"name": "good", "namespace": "payments"},
    "spec": {
        "url": "https://hooks.example.com/riskgate",
        "eventTypes": ["decision.created"],
        "clients": ["checkout"],
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(GOOD)
    obj["spec"].update(changes)
    for key, value in list(obj["spec"].items()):
        if value is None:
            del obj["spec"][key]
    return obj


def test_the_crd_names_scope_and_columns() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "webhooksubscriptions.riskgate.io"
    assert crd()["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert (spec["group"], spec["scope"]) == ("riskgate.io", "Namespaced")
    assert spec["names"]["shortNames"] == ["whsub"]
    assert spec["names"]["categories"] == ["riskgate"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert {"URL", "Ready", "Last Rotation", "Age"} <= set(columns)
    assert columns["Delivery"]["priority"] == 1


def test_every_field_has_a_description() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = [] if "description" in node or path.endswith(".metadata") else [path]
        for name, sub in (node.get("properties") or {}).items():
            missing += walk(sub, f"{path}.{name}")
        if "items" in node:
            missing += walk(node["items"], f"{path}[]")
        return missing

    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema, "") == []


def test_the_kustomization_lists_the_crd() -> None:
    kustomization = yaml.safe_load((CRD_FILE.parent / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [CRD_FILE.name]
    examples = yaml.safe_load((ROOT / "k8s/examples/kustomization.yaml").read_text())
    assert sorted(examples["resources"]) == sorted(p.name for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_admitted(path: Any) -> None:
    for obj in yaml.safe_load_all(path.read_text()):
        _, errors = admit(obj)
        assert errors == [], errors


def test_defaults_are_applied() -> None:
    defaulted, errors = admit(with_spec(secretRotation={}))
    assert errors == []
    assert defaulted["spec"]["secretRotation"] == {"every": "720h", "overlap": "24h"}
    assert defaulted["spec"]["suspend"] is False


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "does not match"),
        ({"url": None}, "'url' is a required property"),
        ({"eventTypes": []}, "should be non-empty"),
        ({"eventTypes": ["decision.made"]}, "is not one of"),
        ({"eventTypes": ["decision.created", "decision.created"]}, "non-unique elements"),
        ({"clients": []}, "should be non-empty"),
        ({"clients": ["Not A Client"]}, "does not match"),
        ({"actions": ["maybe"]}, "is not one of"),
        ({"suspend": "yes"}, "is not of type 'boolean'"),
        ({"secretRotation": {"every": "30 days"}}, "does not match"),
        ({"secretRef": {"key": "secret"}}, "'name' is a required property"),
        ({"unknownField": 1}, None),  # pruned by a real server, not refused: see below
    ],
)
def test_the_schema_refuses(changes: dict[str, Any], says: str | None) -> None:
    _, errors = admit(with_spec(**changes))
    if says is None:
        assert errors == []
    else:
        assert any(says in e for e in errors), errors


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"secretRef": {"name": "mine"}, "secretRotation": {"every": "24h"}},
            "mutually exclusive",
        ),
        ({"secretRotation": {"every": "24h", "overlap": "24h"}}, "overlap must be shorter"),
        ({"secretRotation": {"every": "48h", "overlap": "72h"}}, "overlap must be shorter"),
        ({"secretRotation": {"every": "30s", "overlap": "1s"}}, "at least 1m"),
        ({"secretRotation": {"every": "12h"}}, "overlap must be shorter"),  # default 24h
        ({"actions": ["hold"], "eventTypes": ["transaction.flagged"]}, "actions filter"),
        ({"url": "http://hooks.example.com/riskgate"}, "url must be https"),
        ({"url": "http://receiver.payments.svc.evil.com/x"}, "url must be https"),
        ({"url": "https://"}, "does not match"),
        ({"url": "https:///no-host"}, "absolute URL"),
    ],
)
def test_the_cel_rules_refuse(changes: dict[str, Any], says: str) -> None:
    _, errors = admit(with_spec(**changes))
    assert any(says in e for e in errors), errors


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "http://receiver.payments.svc:8080/hooks"},
        {"url": "http://receiver.payments.svc.cluster.local/hooks"},
        {"url": "http://127.0.0.1:9000/hooks"},
        {"secretRotation": {"every": "1h", "overlap": "59m"}},
        {"secretRotation": {"every": "1m", "overlap": "1s"}},
        {"secretRef": {"name": "mine"}},
        {"actions": ["hold", "review"], "eventTypes": ["decision.created", "webhook.test"]},
        {"actions": []},
    ],
)
def test_the_cel_rules_admit(changes: dict[str, Any]) -> None:
    _, errors = admit(with_spec(**changes))
    assert errors == [], errors

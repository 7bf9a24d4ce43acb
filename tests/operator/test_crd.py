"""The CRDs (WebhookSubscription, ApiClient): their shape, every example validates, bad resources
are refused by the schema or by the CEL rules (evaluated for real with the `cel` library, see
crd_rules)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from crd_rules import CLIENT_CRD_FILE, CRD_FILES, ROOT, admit, crd
from riskgate.auth.scopes import ADMIN_SCOPE, SCOPES
from riskgate.ratelimit.limiter import API_POLICY_PATTERN, RateLimitPolicy

EXAMPLES = sorted(
    p for p in (ROOT / "k8s/examples").glob("*.yaml") if p.name != "kustomization.yaml"
)
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
    return changed(GOOD, changes)


def changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with its spec changed; a None value removes the field."""
    obj = copy.deepcopy(base)
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


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_every_field_has_a_description(path: Any) -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = [] if "description" in node or path.endswith(".metadata") else [path]
        for name, sub in (node.get("properties") or {}).items():
            missing += walk(sub, f"{path}.{name}")
        if "items" in node:
            missing += walk(node["items"], f"{path}[]")
        return missing

    schema = crd(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema, "") == []


def test_the_kustomization_lists_the_crds() -> None:
    kustomization = yaml.safe_load((CLIENT_CRD_FILE.parent / "kustomization.yaml").read_text())
    assert kustomization["resources"] == sorted(p.name for p in CRD_FILES)
    assert sorted(CLIENT_CRD_FILE.parent.glob("*.riskgate.io.yaml")) == sorted(CRD_FILES)
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
        ({"clients": ["Not A Client"]}, "does not match"),
        ({"apiClients": ["Not_An_ApiClient"]}, "does not match"),
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
        ({"clients": []}, "at least one client"),
        ({"clients": None}, "at least one client"),
        ({"clients": [], "apiClients": []}, "at least one client"),
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
        {"clients": None, "apiClients": ["checkout"]},
        {"clients": [], "apiClients": ["checkout"]},
        {"apiClients": ["checkout", "billing.v2"]},
    ],
)
def test_the_cel_rules_admit(changes: dict[str, Any]) -> None:
    _, errors = admit(with_spec(**changes))
    assert errors == [], errors


# --- ApiClient -----------------------------------------------------------------------------

CLIENT: dict[str, Any] = {
    "apiVersion": "riskgate.io/v1alpha1",
    "kind": "ApiClient",
    "metadata": {"name": "checkout", "namespace": "payments"},
    "spec": {"scopes": ["score:write"]},
}


def client_with(**changes: Any) -> dict[str, Any]:
    return changed(CLIENT, changes)


def test_the_apiclient_crd_names_scope_and_columns() -> None:
    found = crd(CLIENT_CRD_FILE)
    spec = found["spec"]
    assert found["metadata"]["name"] == "apiclients.riskgate.io"
    assert found["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (
        "riskgate.io",
        "Namespaced",
        "ApiClient",
    )
    assert spec["names"]["shortNames"] == ["rgclient"]
    assert spec["names"]["categories"] == ["riskgate"]
    version = spec["versions"][0]
    assert (version["name"], version["subresources"]) == ("v1alpha1", {"status": {}})
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Client ID", "Ready", "Suspended", "Next Rotation", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration", "clientId", "secretName", "lastRotationTime", "nextRotationTime",
        "previousCredentialsExpireAt", "conditions",
    }  # fmt: skip


def test_the_apiclient_scopes_are_the_services_but_the_admin_scope() -> None:
    schema = crd(CLIENT_CRD_FILE)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    enum = schema["properties"]["spec"]["properties"]["scopes"]["items"]["enum"]
    assert enum == [s for s in SCOPES if s != ADMIN_SCOPE]


def test_apiclient_defaults_are_applied() -> None:
    defaulted, errors = admit(client_with(credentialRotation={}))
    assert errors == []
    assert defaulted["spec"]["credentialRotation"] == {"every": "720h", "overlap": "24h"}
    assert defaulted["spec"]["suspend"] is False


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"scopes": None}, "'scopes' is a required property"),
        ({"scopes": []}, "should be non-empty"),
        ({"scopes": ["score:write", "score:write"]}, "non-unique elements"),
        ({"scopes": ["clients:admin"]}, "is not one of"),
        ({"scopes": ["score:read"]}, "is not one of"),
        ({"scopes": [f"s{i}" for i in range(17)]}, "is too long"),
        ({"rateLimit": "100 per minute"}, "does not match"),
        ({"rateLimit": "0/60s"}, "does not match"),
        ({"rateLimit": "100/0s"}, "does not match"),
        ({"rateLimit": "100/60w"}, "does not match"),
        ({"rateLimit": "100/60"}, "does not match"),
        ({"rateLimit": "99999999/1d"}, "does not match"),
        ({"rateLimit": "10/6d"}, "does not match"),
        ({"secretName": "Not_A_Name"}, "does not match"),
        ({"suspend": "no"}, "is not of type 'boolean'"),
        ({"credentialRotation": {"every": "30 days"}}, "does not match"),
    ],
)
def test_the_apiclient_schema_refuses(changes: dict[str, Any], says: str) -> None:
    _, errors = admit(client_with(**changes))
    assert any(says in e for e in errors), errors


def test_the_apiclient_rate_limit_pattern_is_the_admin_apis() -> None:
    schema = crd(CLIENT_CRD_FILE)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["rateLimit"]["pattern"] == (
        API_POLICY_PATTERN
    )


@pytest.mark.parametrize(
    "rate_limit", ["100/60s", "10/s", "5000/1h", "1/d", "600/1m", "9999999/5d", "9999999/99999s"]
)
def test_the_apiclient_rate_limit_admits_only_what_the_service_takes(rate_limit: str) -> None:
    _, errors = admit(client_with(rateLimit=rate_limit))
    assert errors == [], errors
    RateLimitPolicy.parse(rate_limit)  # the largest of each unit still counts exactly


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"credentialRotation": {"every": "24h", "overlap": "24h"}}, "overlap must be shorter"),
        ({"credentialRotation": {"every": "12h"}}, "overlap must be shorter"),
        ({"credentialRotation": {"every": "30s", "overlap": "1s"}}, "at least 1m"),
    ],
)
def test_the_apiclient_cel_rules_refuse(changes: dict[str, Any], says: str) -> None:
    _, errors = admit(client_with(**changes))
    assert any(says in e for e in errors), errors


@pytest.mark.parametrize(
    ("before", "after", "admitted"),
    [
        (None, None, True),
        ("mine", "mine", True),
        (None, "mine", False),
        ("mine", None, False),
        ("mine", "theirs", False),
    ],
)
def test_the_secret_name_is_fixed_once_created(
    before: str | None, after: str | None, admitted: bool
) -> None:
    _, created = admit(client_with(secretName=after))
    assert created == [], "any name is fine on creation"
    _, errors = admit(client_with(secretName=after), old=client_with(secretName=before))
    assert (errors == []) is admitted, errors
    assert admitted or any("secretName cannot change" in e for e in errors)

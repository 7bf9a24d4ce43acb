"""What the API server does with our custom resources before the operator sees them, done here:
structural defaults, the openAPIV3Schema (jsonschema) and the CEL rules (x-kubernetes-validations,
evaluated with the `cel` library, plus our own implementation of the Kubernetes extension
function the rules use: ``isURL``)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cel
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "charts/riskgate/files/crds"
CRD_FILE = CRD_DIR / "webhooksubscriptions.riskgate.io.yaml"
CLIENT_CRD_FILE = CRD_DIR / "apiclients.riskgate.io.yaml"
CRD_FILES = (CLIENT_CRD_FILE, CRD_FILE)
_BY_KIND = {"WebhookSubscription": CRD_FILE, "ApiClient": CLIENT_CRD_FILE}


@cache
def crd(path: Path = CRD_FILE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def openapi_schema(path: Path = CRD_FILE) -> dict[str, Any]:
    schema: dict[str, Any] = crd(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def is_url(value: str) -> bool:
    """Kubernetes' ``isURL``: an absolute URL with a scheme and a host (Go's url.Parse rules,
    the part our rule relies on)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc) and " " not in value


def _as_json_schema(node: Any) -> Any:
    """OpenAPI v3 -> JSON Schema: `nullable` becomes a null type (x-kubernetes-* are ignored)."""
    if isinstance(node, list):
        return [_as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True  # the API server refuses duplicates in a set
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: absent fields with a default get it,
    inside objects that are present."""
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _cel_errors(schema: dict[str, Any], value: Any, path: str, old: Any = None) -> list[str]:
    """The CEL rules' refusals; transition rules (those reading ``oldSelf``) only on an update
    whose old object has this field, as on a real server."""
    errors = []
    for rule in schema.get("x-kubernetes-validations") or []:
        variables = {"self": value}
        if "oldSelf" in rule["rule"]:
            if old is None:
                continue
            variables["oldSelf"] = old
        context = cel.Context(variables=variables, functions={"isURL": is_url})
        try:
            passed = cel.evaluate(rule["rule"], context)
        except Exception as exc:  # a rule that cannot evaluate refuses, as the server does
            passed, rule = False, {**rule, "message": f"{rule.get('message')} ({exc})"}
        if passed is not True:
            errors.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                before = old.get(name) if isinstance(old, dict) else None
                errors += _cel_errors(sub, value[name], f"{path}.{name}", before)
    return errors


def admit(
    obj: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(the object with defaults, what the API server would refuse it for), by its kind's CRD
    file; ``old``: the object this one updates."""
    schema = openapi_schema(_BY_KIND[obj.get("kind", "WebhookSubscription")])
    return admit_with(schema, obj, old)


def admit_with(
    schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The same by a given openAPIV3Schema (the emulator's, from the CRD applied to it)."""
    defaulted = apply_defaults(schema, copy.deepcopy(obj))
    validator = jsonschema.Draft7Validator(_as_json_schema(schema))
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(defaulted)
    ]
    if not errors:  # CEL runs only on objects that passed the schema, as on a real server
        before = None if old is None else apply_defaults(schema, copy.deepcopy(old))
        errors = _cel_errors(schema, defaulted, "", before)
    return defaulted, errors

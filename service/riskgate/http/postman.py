"""The committed API files: the OpenAPI document (JSON and YAML) and a Postman collection.

The collection is derived from the document alone (Postman v2.1 format), one request per
operation with its example body, grouped by tag, authenticated with OAuth2 client credentials
against the token endpoint. Ids are derived from the operationIds, so regenerating changes
nothing unless the API did.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Final

import yaml

SCHEMA_URL: Final = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
_NAMESPACE: Final = uuid.UUID("8d6c1f0e-4b7a-4f43-9a51-7c2d3e4f5a6b")
DEV_URL: Final = "http://127.0.0.1:8000"
"""Where ``riskgate dev`` serves; the document itself names no server (it is served by each)."""


def _id(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


def _auth(document: dict[str, Any]) -> dict[str, Any]:
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    values = {
        "grant_type": "client_credentials",
        "accessTokenUrl": "{{baseUrl}}" + flow["tokenUrl"],
        "clientId": "{{clientId}}",
        "clientSecret": "{{clientSecret}}",
        "scope": " ".join(flow["scopes"]),
        "client_authentication": "body",
        "tokenName": "riskgate",
        "addTokenTo": "header",
    }
    return {
        "type": "oauth2",
        "oauth2": [{"key": key, "value": value, "type": "string"} for key, value in values.items()],
    }


def _url(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    segments = [
        f":{part[1:-1]}" if part.startswith("{") else part for part in path.strip("/").split("/")
    ]
    parameters = operation.get("parameters", [])
    url: dict[str, Any] = {
        "raw": "{{baseUrl}}/" + "/".join(segments),
        "host": ["{{baseUrl}}"],
        "path": segments,
    }
    variables = [
        {"key": p["name"], "value": str(p.get("example", "")), "description": p.get("description")}
        for p in parameters
        if p["in"] == "path"
    ]
    query = [
        {"key": p["name"], "value": str(p.get("example", "")), "disabled": True}
        for p in parameters
        if p["in"] == "query"
    ]
    if variables:
        url["variable"] = [{k: v for k, v in item.items() if v is not None} for item in variables]
    if query:
        url["query"] = query
    return url


def _request(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    headers = [{"key": "Accept", "value": "application/json"}]
    if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
        # Postman's dynamic variable: a fresh key per send, as a client should make one.
        headers.append({"key": "Idempotency-Key", "value": "{{$guid}}"})
    request: dict[str, Any] = {
        "method": method.upper(),
        "header": headers,
        "url": _url(path, operation),
        "description": operation.get("description", ""),
    }
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        headers.append({"key": "Content-Type", "value": "application/json"})
        example = content["application/json"].get("example", {})
        request["body"] = {"mode": "raw", "raw": json.dumps(example, indent=2)}
    elif "application/x-www-form-urlencoded" in content:
        request["body"] = {
            "mode": "urlencoded",
            "urlencoded": [
                {"key": "grant_type", "value": "client_credentials"},
                {"key": "client_id", "value": "{{clientId}}"},
                {"key": "client_secret", "value": "{{clientSecret}}"},
            ],
        }
    if operation.get("security") == []:
        request["auth"] = {"type": "noauth"}
    return request


def collection(document: dict[str, Any]) -> dict[str, Any]:
    """A Postman v2.1 collection of every operation in ``document``."""
    folders: dict[str, list[dict[str, Any]]] = {tag["name"]: [] for tag in document["tags"]}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            folders[operation["tags"][0]].append(
                {
                    "id": _id(operation["operationId"]),
                    "name": operation.get("summary", operation["operationId"]),
                    "request": _request(path, method, operation),
                }
            )
    descriptions = {tag["name"]: tag["description"] for tag in document["tags"]}
    return {
        "info": {
            "_postman_id": _id("riskgate"),
            "name": document["info"]["title"],
            "description": document["info"]["description"],
            "schema": SCHEMA_URL,
        },
        "auth": _auth(document),
        "variable": [
            {"key": "baseUrl", "value": DEV_URL},
            {"key": "clientId", "value": "demo-app"},
            {"key": "clientSecret", "value": "demo-secret"},
        ],
        "item": [
            {"name": name, "description": descriptions[name], "item": items}
            for name, items in folders.items()
            if items
        ],
    }


def render(document: dict[str, Any]) -> dict[str, str]:
    """File name -> exact text of each committed file."""
    return {
        "openapi.json": json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        "openapi.yaml": yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100),
        "riskgate.postman_collection.json": json.dumps(
            collection(document), indent=2, ensure_ascii=False
        )
        + "\n",
    }


def write(document: dict[str, Any], output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(document).items():
        path = output / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

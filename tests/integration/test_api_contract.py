"""The OpenAPI document: valid, complete for every live route, committed as generated.

Every check is table-driven over the app's own routes, so a route added without a scope, an
example or its responses fails here rather than shipping undocumented.
"""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jsonschema
import msgspec
import pytest
import yaml
from click.testing import CliRunner
from litestar.routes import HTTPRoute
from openapi_spec_validator import validate

from conftest import RunningApp, new_event_id, new_key
from riskgate.app import ROUTES, openapi_document
from riskgate.auth.scopes import SCOPES
from riskgate.cli import main
from riskgate.http.body import decode_strict
from riskgate.http.openapi import PARAMETER_EXAMPLES, REQUEST_EXAMPLES, Operation, operations
from riskgate.http.postman import render
from riskgate.webhooks.delivery import envelope

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROBLEMS = "https://riskgate.io/problems/"
DOCUMENT = openapi_document()


def _live(app: RunningApp) -> list[Operation]:
    return list(operations(app.litestar))


def _op(operation: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = DOCUMENT["paths"][operation.path][operation.method]
    return spec


async def test_served_document_is_valid_openapi_and_the_generated_one(app: RunningApp) -> None:
    response = await app.anonymous.get("/schema/openapi.json")
    assert response.status_code == 200
    validate(response.json())
    assert response.json() == DOCUMENT
    yaml_response = await app.anonymous.get("/schema/openapi.yaml")
    assert yaml_response.status_code == 200


def test_committed_files_match_the_code() -> None:
    """Regenerate with `riskgate openapi --output docs/` when this fails."""
    for name, text in render(DOCUMENT).items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/{name} is stale: run `riskgate openapi --output docs/`"
    assert yaml.safe_load((DOCS / "openapi.yaml").read_text(encoding="utf-8")) == DOCUMENT


def test_the_cli_writes_the_committed_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["openapi", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in render(DOCUMENT):
        assert (tmp_path / name).read_bytes() == (DOCS / name).read_bytes(), name


def test_every_live_route_is_documented(app: RunningApp) -> None:
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    live = {(op.path, op.method) for op in _live(app)}
    assert live == documented
    in_schema = [handler for handler in ROUTES if handler.include_in_schema is not False]
    assert len(live) >= len(in_schema)


def test_operation_ids_are_readable_and_unique(app: RunningApp) -> None:
    ids = [_op(op)["operationId"] for op in _live(app)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", i) for i in ids), ids
    assert "scoreEvent" in ids


def test_schema_names_are_the_struct_names() -> None:
    names = set(DOCUMENT["components"]["schemas"])
    assert {"ScoreRequest", "DecisionResponse", "Problem", "DebitRequest"} <= names
    assert not [n for n in names if "RequestBody" in n]


def test_oauth2_scheme_lists_the_token_url_and_every_scope() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["oauth2"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth2/token"
    assert list(flow["scopes"]) == list(SCOPES)


def test_tags_are_described_and_used() -> None:
    declared = {tag["name"]: tag["description"] for tag in DOCUMENT["tags"]}
    assert all(declared.values())
    used = {op["tags"][0] for item in DOCUMENT["paths"].values() for op in item.values()}
    assert used <= set(declared)


def test_each_operation_declares_its_scope_or_is_open(app: RunningApp) -> None:
    for operation in _live(app):
        security = _op(operation)["security"]
        if operation.public:
            assert security == [], operation.path
        else:
            assert operation.scope in SCOPES, f"{operation.path} {operation.method}: no scope"
            assert security == [{"oauth2": [operation.scope]}, {"apiKey": []}]


def test_each_operation_lists_the_statuses_it_can_answer(app: RunningApp) -> None:
    for operation in _live(app):
        statuses = set(_op(operation)["responses"])
        where = f"{operation.method} {operation.path}"
        assert "400" in statuses, where
        assert any(s.startswith("2") for s in statuses), where
        if not operation.public:
            assert {"401", "403", "429", "503"} <= statuses, where
        if operation.body is not None:
            assert {"413", "415", "422"} <= statuses, where
        if "{" in operation.path:
            assert "404" in statuses or operation.method == "put", where


def test_each_response_declares_its_headers(app: RunningApp) -> None:
    components = DOCUMENT["components"]["headers"]
    for operation in _live(app):
        for status, response in _op(operation)["responses"].items():
            headers = response["headers"]
            assert "X-Trace-Id" in headers
            for ref in headers.values():
                assert "schema" in components[ref["$ref"].rsplit("/", 1)[1]]
            if not operation.public and status != "401":
                assert "RateLimit" in headers, (operation.path, status)
            if status in ("429", "503") and "application/problem+json" in response["content"]:
                assert "Retry-After" in headers
            if status in ("401", "403"):
                assert "WWW-Authenticate" in headers


def test_idempotent_operations_require_the_key(app: RunningApp) -> None:
    idempotent = [op for op in _live(app) if op.idempotent]
    assert len(idempotent) >= 6
    for operation in idempotent:
        (key,) = [p for p in _op(operation)["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["in"] == "header"
        assert key["required"] is True
        successes = [r for s, r in _op(operation)["responses"].items() if s.startswith("2")]
        for response in successes:
            assert {"Location", "Idempotent-Replayed"} <= set(response["headers"])


async def test_a_creating_post_without_the_key_is_refused_as_documented(app: RunningApp) -> None:
    """The opt marks the routes that check the key: a POST that checks it without the opt (or
    the other way round) would make the document lie."""
    for operation in _live(app):
        if operation.method != "post" or operation.public:
            continue
        path = _example_path(operation)
        body = REQUEST_EXAMPLES.get(operation.body.__name__) if operation.body else None
        response = await app.client.post(path, json=body)
        missing = response.status_code == 400 and response.json()["type"] == (
            PROBLEMS + "idempotency-key-missing"
        )
        assert missing == operation.idempotent, (path, response.status_code, response.text)


def _example_path(operation: Operation) -> str:
    def value(match: re.Match[str]) -> str:
        (parameter,) = [
            p for p in _op(operation)["parameters"] if p["name"] == match[1] and p["in"] == "path"
        ]
        return str(parameter["example"])

    return re.sub(r"\{([^}]+)\}", value, operation.path)


def test_each_body_has_an_example_the_server_accepts(app: RunningApp) -> None:
    for operation in _live(app):
        if operation.body is None:
            continue
        media = _op(operation)["requestBody"]["content"]["application/json"]
        assert "example" in media, f"{operation.path}: add it to REQUEST_EXAMPLES"
        decode_strict(msgspec.json.encode(media["example"]), operation.body)
        schema = {**media["schema"], "components": DOCUMENT["components"]}
        jsonschema.validate(media["example"], schema)


def test_each_path_parameter_has_an_example(app: RunningApp) -> None:
    for operation in _live(app):
        for parameter in _op(operation).get("parameters", []):
            if parameter["in"] == "path":
                assert "example" in parameter, (operation.path, parameter["name"])


def test_request_schemas_refuse_unknown_fields() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for name in REQUEST_EXAMPLES:
        schema = schemas[name]
        for variant in [schema] if "properties" in schema else schema["oneOf"]:
            assert variant["additionalProperties"] is False, name


def test_money_is_a_string_or_a_number_with_the_currencys_decimals() -> None:
    schema = {"$ref": "#/components/schemas/DebitRequest", **DOCUMENT}
    validator = jsonschema.Draft202012Validator(schema)

    def ok(amount: Any, currency: str) -> bool:
        return validator.is_valid({"account_id": 1, "amount": amount, "currency": currency})

    accepted = [("10.50", "GBP"), (10.5, "GBP"), ("10.500", "GBP"), ("0.05", "GBP")]
    accepted += [("1000000000", "GBP"), ("1.234", "KWD"), ("7", "JPY")]
    refused = [("10.505", "GBP"), ("10.5", "JPY"), ("0.00", "GBP"), ("1e3", "GBP")]
    refused += [("010", "GBP"), ("1000000000.01", "GBP"), (-1, "GBP"), (0, "GBP")]
    assert [case for case in accepted if not ok(*case)] == []
    assert [case for case in refused if ok(*case)] == []


def test_problem_types_are_listed() -> None:
    types = DOCUMENT["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    for slug in ("validation-error", "idempotency-key-reused", "unknown-query-parameter"):
        assert PROBLEMS + slug in types


def test_webhook_payloads_are_described() -> None:
    assert set(DOCUMENT["webhooks"]) == {
        "decision.created",
        "transaction.approved",
        "transaction.declined",
        "transaction.flagged",
        "webhook.test",
    }


async def test_a_delivered_decision_matches_its_webhook_schema(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    body = REQUEST_EXAMPLES["ScoreRequest"] | {"event_id": new_event_id()}
    scored = await client.post("/v1/score", json=body, headers={"Idempotency-Key": new_key()})
    assert scored.status_code == 201, scored.text
    row = await db.fetchrow(
        "SELECT payload::text, created_at FROM outbox WHERE aggregate_id = $1",
        uuid.UUID(scored.json()["id"]),
    )
    assert row is not None
    sent = envelope("decision.created", row["created_at"], row["payload"].encode())
    hook = DOCUMENT["webhooks"]["decision.created"]["post"]
    schema = hook["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.validate(msgspec.json.decode(sent), {**schema, **DOCUMENT})


def test_postman_collection_uses_oauth2_client_credentials() -> None:
    collection = msgspec.json.decode((DOCS / "riskgate.postman_collection.json").read_bytes())
    auth = {item["key"]: item["value"] for item in collection["auth"]["oauth2"]}
    assert auth["grant_type"] == "client_credentials"
    assert auth["accessTokenUrl"] == "{{baseUrl}}/oauth2/token"
    assert auth["scope"].split() == list(SCOPES)
    requests = [r for folder in collection["item"] for r in folder["item"]]
    assert len(requests) == sum(len(item) for item in DOCUMENT["paths"].values())


# --- OPTIONS ---------------------------------------------------------------------------------


async def test_options_answers_every_method_of_every_path(app: RunningApp) -> None:
    """Litestar's automatic OPTIONS knows only the first handler registered for a path."""
    for route in app.litestar.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{([^}:]+)[^}]*\}", _example_value, route.path)
        response = await app.anonymous.options(path)
        assert response.status_code == 204, (path, response.status_code)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == set(route.methods), path


def _example_value(match: re.Match[str]) -> str:
    return str(PARAMETER_EXAMPLES.get(match[1], "x"))


# --- unknown query parameters ----------------------------------------------------------------


async def test_an_unknown_query_parameter_is_400_naming_it_on_every_route(
    app: RunningApp,
) -> None:
    for operation in _live(app):
        path = _example_path(operation)
        response = await app.client.request(
            operation.method.upper(),
            path,
            params={"next_cursor": "abc"},
            headers={"Idempotency-Key": new_key()},
        )
        where = f"{operation.method} {path}"
        assert response.status_code == 400, (where, response.status_code)
        problem = response.json()
        assert problem["type"] == PROBLEMS + "unknown-query-parameter", where
        assert problem["field"] == "next_cursor"


@pytest.mark.parametrize(
    ("query", "field", "status"),
    [
        ("source=null", "source", 400),  # Litestar reads null as "not given": every source
        ("limit=1&limit=50", "limit", 400),  # Litestar keeps the last of the two
        ("created_before=0.5", "created_before", 422),  # or a Unix timestamp
    ],
)
async def test_a_query_value_is_read_as_written_or_refused(
    client: httpx.AsyncClient, query: str, field: str, status: int
) -> None:
    response = await client.get(f"/v1/events?{query}")
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


async def test_declared_query_parameters_are_still_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", params={"limit": 1, "action": "hold"})
    assert response.status_code == 200


# --- docs that work offline ------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_docs_pages_load_every_asset_from_riskgate(app: RunningApp, page: str) -> None:
    response = await app.anonymous.get(page)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    parser = _Assets()
    parser.feed(response.text)
    assert len(parser.urls) >= 4, parser.urls
    assert not re.search(r"https?://(?!riskgate\.io/problems)", response.text.split("spec:")[0])
    for url in parser.urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        asset = await app.anonymous.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url

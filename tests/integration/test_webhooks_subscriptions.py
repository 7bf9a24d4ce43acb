"""The subscription API: secrets shown once and sealed at rest, validation, tenant isolation,
Kubernetes-managed subscriptions (sync upsert, read-only elsewhere) and key rotation."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import (
    RunningApp,
    connect_as_app,
    fresh_database,
    new_key,
    register_client,
    running_app,
)
from riskgate.settings import Settings
from riskgate.webhooks.crypto import KeyRing, Sealed
from riskgate.webhooks.service import reseal_all
from webhook_support import KEYS, subscribe, unique_db, webhook_settings

URL = "https://hooks.riskgate-test.invalid/riskgate"
SUBS = "/v1/webhooks/subscriptions"


@pytest.fixture(scope="module")
async def hook_settings(postgres_admin_url: str, settings: Settings) -> Settings:
    url = await fresh_database(postgres_admin_url, unique_db("subs"))
    return webhook_settings(settings, url)


@pytest.fixture(scope="module")
async def app(hook_settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(hook_settings) as running:
        yield running


@pytest.fixture
async def db(hook_settings: Settings) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await connect_as_app(hook_settings.database_url)
    yield conn
    await conn.close()


async def client_with(app: RunningApp, scopes: str) -> httpx.AsyncClient:
    _, issued = await register_client(app.runtime, scopes)
    return app.http_client({"X-API-Key": issued.api_key})


def managed_body(client_name: str, *secrets: str, **fields: Any) -> dict[str, Any]:
    return {
        "url": URL,
        "event_types": ["decision.created"],
        "clients": [client_name],
        "secrets": [{"value": s} for s in secrets],
        **fields,
    }


async def test_created_subscription_shows_its_secret_once_and_stores_it_sealed(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    created = await subscribe(app.client, URL, event_types=["decision.created", "webhook.test"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    got = await app.client.get(f"{SUBS}/{created['id']}")
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert got.json()["managed_by"] == "api"
    assert got.json()["clients"] == [app.caller.name]

    rows = await db.fetch(
        "SELECT key_id, sealed FROM webhook_secrets WHERE subscription_id = $1",
        uuid.UUID(created["id"]),
    )
    assert [r["key_id"] for r in rows] == ["test-1"]
    assert secret.encode() not in bytes(rows[0]["sealed"])
    assert (
        KeyRing.parse(KEYS).open(
            Sealed("test-1", bytes(rows[0]["sealed"])), uuid.UUID(created["id"]).bytes
        )
        == secret.encode()
    )


async def test_create_is_idempotent_and_the_stored_replay_is_sealed_too(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    key = new_key()
    body = {"url": URL, "event_types": ["decision.created"]}
    first = await app.client.post(SUBS, json=body, headers={"Idempotency-Key": key})
    again = await app.client.post(SUBS, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    stored = await db.fetchval("SELECT response_body FROM idempotency_keys WHERE key = $1", key)
    assert b"whsec_" not in bytes(stored)
    missing = await app.client.post(SUBS, json=body)
    assert missing.status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": URL, "event_types": ["decision.deleted"]}, "event_types[0]"),
        ({"url": URL, "event_types": []}, "event_types"),
        ({"url": "not a url", "event_types": ["decision.created"]}, "url"),
        ({"url": URL, "event_types": ["transaction.approved"], "actions": ["hold"]}, "actions"),
        ({"url": URL, "event_types": ["decision.created"], "description": "x"}, "description"),
        ({"url": URL, "event_types": ["decision.created"], "actions": ["block"]}, "actions[0]"),
    ],
)
async def test_invalid_subscriptions_are_422_naming_the_field(
    app: RunningApp, body: dict[str, Any], field: str
) -> None:
    response = await app.client.post(SUBS, json=body, headers={"Idempotency-Key": new_key()})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_update_pause_and_delete(app: RunningApp) -> None:
    created = await subscribe(app.client, URL)
    changed = await app.client.patch(
        f"{SUBS}/{created['id']}",
        json={"event_types": ["decision.created"], "actions": ["hold", "review"], "paused": True},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["actions"], changed.json()["paused"]) == (["hold", "review"], True)
    cleared = await app.client.patch(f"{SUBS}/{created['id']}", json={"actions": []})
    assert cleared.json()["actions"] == []
    bad = await app.client.patch(f"{SUBS}/{created['id']}", json={"url": "gopher://x"})
    assert (bad.status_code, bad.json()["field"]) == (422, "url")
    assert (await app.client.delete(f"{SUBS}/{created['id']}")).status_code == 204
    assert (await app.client.get(f"{SUBS}/{created['id']}")).status_code == 404


async def test_listing_pages_newest_first(app: RunningApp) -> None:
    own = await client_with(app, "webhooks:read webhooks:write")
    ids = [(await subscribe(own, URL))["id"] for _ in range(3)]
    first = (await own.get(SUBS, params={"limit": 2})).json()
    second = (await own.get(SUBS, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [s["id"] for s in first["data"] + second["data"]] == ids[::-1]
    assert second["next_cursor"] is None
    await own.aclose()


async def test_another_client_cannot_see_or_touch_a_subscription(app: RunningApp) -> None:
    created = await subscribe(app.client, URL)
    other = await client_with(app, "webhooks:read webhooks:write")
    path = f"{SUBS}/{created['id']}"
    assert (await other.get(path)).status_code == 404
    assert (await other.patch(path, json={"paused": True})).status_code == 404
    assert (await other.delete(path)).status_code == 404
    assert created["id"] not in {s["id"] for s in (await other.get(SUBS)).json()["data"]}
    sent = await other.post(
        "/v1/webhooks/test",
        json={"subscription_id": created["id"]},
        headers={"Idempotency-Key": new_key()},
    )
    assert sent.status_code == 404
    await other.aclose()


async def test_scopes_are_enforced(app: RunningApp) -> None:
    reader = await client_with(app, "webhooks:read")
    assert (await reader.get(SUBS)).status_code == 200
    denied = await reader.post(
        SUBS, json={"url": URL, "event_types": ["decision.created"]},
        headers={"Idempotency-Key": new_key()},
    )  # fmt: skip
    assert denied.status_code == 403
    synced = await reader.put(
        "/v1/webhooks/managed-subscriptions/ns/name", json=managed_body("x", "whsec_x")
    )
    assert synced.status_code == 403
    await reader.aclose()


async def test_kubernetes_managed_subscription_is_upserted_and_read_only_elsewhere(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    operator = await client_with(app, "subscriptions:sync webhooks:read")
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    path = "/v1/webhooks/managed-subscriptions/payments/fraud-alerts"
    created = await operator.put(path, json=managed_body(app.caller.name, secret))
    assert created.status_code == 201, created.text
    sub = created.json()
    assert (sub["managed_by"], sub["managed_ref"]) == ("kubernetes", "payments/fraud-alerts")
    assert sub["clients"] == [app.caller.name]

    replaced = await operator.put(
        path, json=managed_body(app.caller.name, secret, event_types=["transaction.flagged"])
    )
    assert replaced.status_code == 200
    assert replaced.json()["id"] == sub["id"]
    assert replaced.json()["event_types"] == ["transaction.flagged"]

    # The client whose events it receives sees it, but cannot change it.
    one = f"{SUBS}/{sub['id']}"
    assert (await app.client.get(one)).json()["managed_by"] == "kubernetes"
    for response in (
        await app.client.patch(one, json={"paused": True}),
        await app.client.delete(one),
        await app.client.post(f"{one}/rotate-secret", headers={"Idempotency-Key": new_key()}),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["type"].endswith("/subscription-managed-externally")

    rival = await client_with(app, "subscriptions:sync")
    taken = await rival.put(path, json=managed_body(app.caller.name, secret))
    assert taken.status_code == 409
    assert (await rival.delete(path)).status_code == 409
    assert (await operator.delete(path)).status_code == 204
    assert (await app.client.get(one)).status_code == 404
    for http in (operator, rival):
        await http.aclose()


async def test_sync_refuses_unknown_clients_and_bad_secrets(app: RunningApp) -> None:
    operator = await client_with(app, "subscriptions:sync")
    good = "whsec_" + base64.b64encode(b"s" * 32).decode()
    short = "whsec_" + base64.b64encode(b"s" * 16).decode()
    path = "/v1/webhooks/managed-subscriptions/ns/bad"
    unknown = await operator.put(path, json=managed_body("nobody-here", good))
    assert (unknown.status_code, unknown.json()["field"]) == (422, "clients")
    weak = await operator.put(path, json=managed_body(app.caller.name, short))
    assert weak.status_code == 422
    await operator.aclose()


async def test_keys_rotate_reseals_every_secret_under_the_new_key(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    created = await subscribe(app.client, URL)
    new_entry = f"test-2:{base64.b64encode(b'n' * 32).decode()}"
    ring = KeyRing.parse(f"{new_entry},{KEYS}")
    assert await reseal_all(app.runtime.pool, ring) >= 1
    row = await db.fetchrow(
        "SELECT key_id, sealed FROM webhook_secrets WHERE subscription_id = $1",
        uuid.UUID(created["id"]),
    )
    assert row is not None
    assert row["key_id"] == "test-2"
    opened = KeyRing.parse(new_entry).open(
        Sealed("test-2", bytes(row["sealed"])), uuid.UUID(created["id"]).bytes
    )
    assert opened.decode() == created["secret"]
    assert await db.fetchval("SELECT count(*) FROM webhook_secrets WHERE key_id <> 'test-2'") == 0
    # Put the ring back the way the app reads it, for the tests after this one.
    assert await reseal_all(app.runtime.pool, KeyRing.parse(f"{KEYS},{new_entry}")) >= 1


async def test_webhook_routes_are_in_the_openapi_document(app: RunningApp) -> None:
    spec = (await app.client.get("/schema/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        SUBS,
        SUBS + "/{subscription_id}",
        SUBS + "/{subscription_id}/rotate-secret",
        SUBS + "/{subscription_id}/recover",
        "/v1/webhooks/deliveries",
        "/v1/webhooks/deliveries/{delivery_id}/replay",
        "/v1/webhooks/test",
        "/v1/webhooks/managed-subscriptions/{namespace}/{name}",
    ):
        assert path in paths, path


def assert_not_cacheable(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers.get("pragma") == "no-cache", response.headers


async def test_every_response_carrying_a_secret_is_no_store(app: RunningApp) -> None:
    """Creation, rotation and the bare-URL test, each answered and then replayed."""
    created = await subscribe(app.client, URL)
    requests: list[tuple[str, dict[str, Any] | None]] = [
        (SUBS, {"url": URL, "event_types": ["webhook.test"]}),
        ("/v1/webhooks/test", {"url": URL}),
        (f"{SUBS}/{created['id']}/rotate-secret", None),
    ]
    for path, body in requests:
        headers = {"Idempotency-Key": new_key()}
        first = await app.client.post(path, json=body, headers=headers)
        again = await app.client.post(path, json=body, headers=headers)
        assert first.status_code in (200, 201, 202), first.text
        assert "whsec_" in first.text
        assert again.headers["idempotent-replayed"] == "true"
        assert_not_cacheable(first)
        assert_not_cacheable(again)


async def test_a_trailing_newline_in_a_delivery_id_finds_nothing(app: RunningApp) -> None:
    sent = await app.client.post(
        "/v1/webhooks/test", json={"url": URL}, headers={"Idempotency-Key": new_key()}
    )
    assert sent.status_code == 202, sent.text
    delivery = f"/v1/webhooks/deliveries/{sent.json()['delivery_id']}"
    assert (await app.client.get(delivery)).status_code == 200
    aliased = await app.client.get(f"{delivery}%0A")
    assert aliased.status_code in (404, 422), aliased.text


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        pytest.param("payments%0A/hooks", "namespace", id="newline-after-namespace"),
        pytest.param("payments/hooks%0A", "name", id="newline-after-name"),
        pytest.param("Payments/hooks", "namespace", id="not-rfc-1123"),
    ],
)
async def test_a_malformed_managed_reference_is_422(app: RunningApp, ref: str, field: str) -> None:
    body = managed_body(app.caller.name, "whsec_" + "A" * 43 + "=")
    managed = "/v1/webhooks/managed-subscriptions"
    refused = await app.client.put(f"{managed}/{ref}", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field
    assert (await app.client.put(f"{managed}/payments/hooks", json=body)).status_code in (200, 201)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(SUBS, {"url": f"{URL}\u0000", "event_types": ["webhook.test"]}, id="create"),
        pytest.param("/v1/webhooks/test", {"url": f"{URL}\u0000"}, id="test"),
    ],
)
async def test_a_nul_in_a_url_is_422_not_a_500(
    app: RunningApp, path: str, body: dict[str, Any]
) -> None:
    """Valid JSON, but no PostgreSQL text column can store it."""
    response = await app.client.post(path, json=body, headers={"Idempotency-Key": new_key()})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "url"


async def test_create_response_shows_the_stored_created_at(app: RunningApp) -> None:
    """The response is built before the row is written: the row must take its timestamps."""
    created = await subscribe(app.client, URL)
    stored = (await app.client.get(f"{SUBS}/{created['id']}")).json()
    assert (stored["created_at"], stored["updated_at"]) == (
        created["created_at"],
        created["updated_at"],
    )


async def test_an_upper_case_scheme_is_stored_in_lower_case(app: RunningApp) -> None:
    """``HTTPS://`` passed validation but failed the table's CHECK (a 500) before."""
    created = await subscribe(app.client, "HTTPS://hooks.riskgate-test.invalid/upper")
    assert created["url"] == "https://hooks.riskgate-test.invalid/upper"

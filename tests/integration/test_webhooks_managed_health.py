"""GET /v1/webhooks/managed-subscriptions/{namespace}/{name}: the operator's read of a managed
subscription with its delivery health, computed from real deliveries by a real worker."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from conftest import RunningApp, fresh_database, register_client, running_app
from riskgate.settings import Settings
from riskgate.webhooks.worker import Worker
from webhook_receiver import Receiver, script
from webhook_support import running_worker, score, unique_db, wait_delivery, webhook_settings

SECRET = "whsec_" + base64.b64encode(b"h" * 32).decode()
PATH = "/v1/webhooks/managed-subscriptions/payments/health"


@pytest.fixture(scope="module")
async def hook_settings(postgres_admin_url: str, settings: Settings) -> Settings:
    url = await fresh_database(postgres_admin_url, unique_db("health"))
    # Two tries, then the delivery is a dead letter.
    return webhook_settings(settings, url, webhook_retry_schedule="0s,100ms")


@pytest.fixture(scope="module")
async def app(hook_settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(hook_settings) as running:
        yield running


@pytest.fixture(scope="module")
async def worker(hook_settings: Settings, app: RunningApp) -> AsyncIterator[Worker]:
    async with running_worker(hook_settings) as running:
        yield running


async def operator_client(app: RunningApp, scopes: str = "subscriptions:sync") -> httpx.AsyncClient:
    _, issued = await register_client(app.runtime, scopes)
    return app.http_client({"X-API-Key": issued.api_key})


async def test_health_counts_successes_failures_and_dead_letters(
    app: RunningApp, worker: Worker
) -> None:
    # The first delivery fails twice (a dead letter), the second succeeds.
    receiver = await Receiver(script((500, {}, b"no"), (500, {}, b"no"))).start()
    operator = await operator_client(app)
    try:
        body = {
            "url": receiver.url,
            "event_types": ["decision.created"],
            "clients": [app.caller.name],
            "secrets": [{"value": SECRET}],
        }
        assert (await operator.put(PATH, json=body)).status_code == 201
        fresh = (await operator.get(PATH)).json()
        assert fresh["health"] == {
            "last_success_at": None,
            "failing_since": None,
            "recent_attempts": 0,
            "recent_success_ratio": None,
            "dead_letters": 0,
        }
        first = await score(app.client)
        await wait_delivery(app.client, "exhausted", event_ref=first["id"])
        failing = (await operator.get(PATH)).json()
        assert failing["health"]["failing_since"] is not None
        assert failing["health"]["dead_letters"] == 1
        assert failing["health"]["recent_success_ratio"] == 0.0

        second = await score(app.client)
        await wait_delivery(app.client, "succeeded", event_ref=second["id"])
        got = await operator.get(PATH)
        assert got.status_code == 200
        health = got.json()["health"]
        assert health["failing_since"] is None
        assert health["last_success_at"] is not None
        assert (health["recent_attempts"], health["recent_success_ratio"]) == (3, 0.3333)
        assert health["dead_letters"] == 1
        assert got.json()["managed_ref"] == "payments/health"
        assert got.json()["status"] == "active"
    finally:
        await operator.delete(PATH)
        await operator.aclose()
        await receiver.close()


async def test_health_is_404_when_absent_409_for_another_client_403_without_scope(
    app: RunningApp,
) -> None:
    operator, rival = await operator_client(app), await operator_client(app)
    reader = await operator_client(app, "webhooks:read")
    path = "/v1/webhooks/managed-subscriptions/payments/owned"
    try:
        absent = await operator.get(path)
        assert absent.status_code == 404
        assert absent.headers["content-type"] == "application/problem+json"
        body = {
            "url": "https://hooks.riskgate-test.invalid/x",
            "event_types": ["decision.created"],
            "clients": [app.caller.name],
            "secrets": [{"value": SECRET}],
        }
        assert (await operator.put(path, json=body)).status_code == 201
        assert (await rival.get(path)).status_code == 409
        assert (await reader.get(path)).status_code == 403
        assert (await operator.get(path)).status_code == 200
    finally:
        await operator.delete(path)
        for http in (operator, rival, reader):
            await http.aclose()

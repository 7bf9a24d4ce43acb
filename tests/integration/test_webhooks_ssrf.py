"""The SSRF guard outside dev mode: refused when a subscription is saved, and again when a
delivery connects (a target that was allowed when saved can point somewhere else later)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from conftest import RunningApp, connect_as_app, fresh_database, new_key, running_app
from riskgate.settings import Settings
from webhook_receiver import Receiver
from webhook_support import score, subscribe, unique_db, wait_delivery, webhook_settings


@pytest.fixture(scope="module")
async def production(postgres_admin_url: str, settings: Settings) -> Settings:
    url = await fresh_database(postgres_admin_url, unique_db("ssrf"))
    return webhook_settings(settings, url, mode="production")


@pytest.fixture(scope="module")
async def app(production: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(production) as running:
        yield running


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9000/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://192.168.1.20/hook",
        "http://100.100.100.200/",
        "http://0.0.0.0/hook",
    ],
)
async def test_private_targets_are_refused_at_creation(app: RunningApp, url: str) -> None:
    response = await app.client.post(
        "/v1/webhooks/subscriptions",
        json={"url": url, "event_types": ["decision.created"]},
        headers={"Idempotency-Key": new_key()},
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/webhook-target-refused")
    assert problem["field"] == "url"


async def test_other_schemes_are_refused(app: RunningApp) -> None:
    response = await app.client.post(
        "/v1/webhooks/subscriptions",
        json={"url": "ftp://hooks.example.com/x", "event_types": ["decision.created"]},
        headers={"Idempotency-Key": new_key()},
    )
    assert response.status_code == 422


async def test_a_test_webhook_to_a_private_url_is_refused(app: RunningApp) -> None:
    response = await app.client.post(
        "/v1/webhooks/test",
        json={"url": "http://169.254.169.254/"},
        headers={"Idempotency-Key": new_key()},
    )
    assert response.status_code == 422


async def test_a_public_looking_name_that_does_not_resolve_is_accepted(app: RunningApp) -> None:
    await subscribe(app.client, "https://hooks.riskgate-test.invalid/riskgate")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_delivery_time_check_refuses_loopback_and_never_connects(
    app: RunningApp, production: Settings, host: str
) -> None:
    """A URL that slipped in (saved when allowed, or its DNS changed) is refused when the
    worker connects: the delivery fails without retries and the receiver sees nothing."""
    from webhook_support import running_worker

    receiver = await Receiver().start()
    try:
        subscription = await subscribe(app.client, "https://hooks.riskgate-test.invalid/x")
        conn = await connect_as_app(production.database_url)
        try:
            await conn.execute(
                "UPDATE webhook_subscriptions SET url = $2 WHERE id = $1",
                uuid.UUID(subscription["id"]),
                f"http://{host}:{receiver.port}/hook",
            )
        finally:
            await conn.close()
        async with running_worker(production):
            decision = await score(app.client)
            failed = await wait_delivery(
                app.client, "failed", event_ref=decision["id"], subscription_id=subscription["id"]
            )
        assert failed["last_error_class"] == "ssrf_blocked"
        assert len(failed["attempts"]) == 1
        # The delivery is final and the worker has stopped: nothing more can reach the receiver.
        assert receiver.received == []
        assert receiver.connections == 0
    finally:
        await receiver.close()

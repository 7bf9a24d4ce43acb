"""Helpers shared by the webhook tests: settings, an in-process worker, API shortcuts."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from conftest import connect_as_app, new_event_id, new_key, settings_with
from riskgate.settings import Settings
from riskgate.webhooks.worker import Worker

KEY_ID = "test-1"
KEYS = f"{KEY_ID}:{base64.b64encode(b'k' * 32).decode()}"


def webhook_settings(settings: Settings, database_url: str, **changes: Any) -> Settings:
    """Fast settings for webhook tests: tiny retry schedule, short polls and leases."""
    defaults: dict[str, Any] = {
        "database_url": database_url,
        "webhook_encryption_keys": KEYS,
        "webhook_retry_schedule": "0s,100ms,100ms",
        "webhook_retry_jitter": 0.0,
        "webhook_timeout_seconds": 3.0,
        "worker_lease_seconds": 6.0,
        "worker_poll_seconds": 0.2,
    }
    return settings_with(settings, **{**defaults, **changes})


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    worker = Worker(settings)
    task = asyncio.create_task(worker.run())
    started = asyncio.create_task(worker.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=15)


async def subscribe(client: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ["decision.created"], **fields}
    response = await client.post(
        "/v1/webhooks/subscriptions", json=body, headers={"Idempotency-Key": new_key()}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def score(client: httpx.AsyncClient, **signals: float) -> dict[str, Any]:
    values = {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0, **signals}
    response = await client.post(
        "/v1/score",
        json={"event_id": new_event_id(), "source": "flight", "signals": values},
        headers={"Idempotency-Key": new_key()},
    )
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    return decision


async def deliveries(client: httpx.AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/webhooks/deliveries", params={"limit": 100, **filters})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def wait_delivery(
    client: httpx.AsyncClient, status: str, timeout: float = 10.0, **filters: Any
) -> dict[str, Any]:
    """The one delivery matching ``filters`` once it reaches ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await deliveries(client, **filters)
        if found and found[0]["status"] == status:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no delivery reached {status}: {found}")
        await asyncio.sleep(0.05)


async def wait_dispatched(database_url: str, event_ref: str, timeout: float = 10.0) -> None:
    """Until the worker has fanned the event's outbox row out: from then on, the deliveries it
    will ever make for that event exist (or, for a subscription that does not match, never will).
    """
    conn = await connect_as_app(database_url)
    try:
        deadline = time.monotonic() + timeout
        while not await conn.fetchval(
            "SELECT bool_and(dispatched_at IS NOT NULL) FROM outbox WHERE aggregate_id = $1",
            uuid.UUID(event_ref),
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"the outbox row of {event_ref} was never dispatched")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def unique_db(prefix: str) -> str:
    return f"riskgate_{prefix}_{uuid.uuid4().hex[:8]}"

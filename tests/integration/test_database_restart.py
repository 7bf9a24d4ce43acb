"""PostgreSQL goes away under a running app and comes back.

A server of its own (never the shared one) is crashed (SIGKILL) or stopped cleanly while the
app runs. While it is down, requests that need it get a retryable 503 problem and readiness
says postgres is down; once it is back, the same app instance recovers without a restart, and
responses stored before the outage still replay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from conftest import RunningApp, fresh_database, new_event_id, new_key, running_app, settings_with
from riskgate.settings import Settings
from riskgate_dev.embedded import EmbeddedPostgres
from webhook_support import running_worker, webhook_settings

pytestmark = pytest.mark.slow

RECOVERY_SECONDS = 10.0
# Words that would mean a driver or OS error leaked into a response body.
LEAKS = ("asyncpg", "errno", "refused", "traceback", "connection", "postgres")


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("restart") / "pg", fsync="off")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def own_settings(own_postgres: EmbeddedPostgres, settings: Settings) -> Settings:
    url = await fresh_database(own_postgres.url, "riskgate")  # migrated, the app's login
    return settings_with(settings, database_url=url)


@pytest.fixture
async def app_on_own_postgres(
    own_postgres: EmbeddedPostgres, own_settings: Settings
) -> AsyncIterator[RunningApp]:
    async with running_app(own_settings) as app:
        try:
            yield app
        finally:
            # A failed test may leave the server down; the app's teardown needs it up.
            await asyncio.to_thread(own_postgres.start)


def score_body(event_id: str) -> dict[str, object]:
    signals = {"delay": 0.2, "weather": 0.7, "geo": 0.0, "payment_anomaly": 0}
    return {"event_id": event_id, "source": "hotel", "signals": signals}


async def post_score(
    client: httpx.AsyncClient, key: str, body: dict[str, object]
) -> httpx.Response:
    return await client.post("/v1/score", json=body, headers={"idempotency-key": key})


def assert_unavailable(response: httpx.Response) -> None:
    """A retryable 503 problem that says nothing about the driver."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    problem = response.json()
    assert problem["type"].endswith("/dependency-unavailable")
    assert problem["status"] == 503
    assert problem["trace_id"]
    leaked = [word for word in LEAKS if word in response.text.lower()]
    assert not leaked, response.text


def postgres_unavailable_count() -> float:
    value = REGISTRY.get_sample_value(
        "riskgate_postgres_unavailable_total", {"operation": "request"}
    )
    assert value is not None, "the counter is exported from the start"
    return value


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/v1/health/ready")
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def poll_until_201(
    send: Callable[[], Awaitable[httpx.Response]], within: float = RECOVERY_SECONDS
) -> httpx.Response:
    """Repeat ``send`` until it gives 201; every answer before that must be a clean 503."""
    deadline = time.monotonic() + within
    while True:
        response = await send()
        if response.status_code == 201:
            return response
        assert_unavailable(response)
        assert time.monotonic() < deadline, "the app did not recover in time"
        await asyncio.sleep(0.05)


async def check_outage_then_recovery(
    app: RunningApp, server: EmbeddedPostgres, take_down: Callable[[], None]
) -> None:
    client = app.client
    before_key, before_body = new_key(), score_body(new_event_id())
    stored = await post_score(client, before_key, before_body)
    assert stored.status_code == 201, stored.text

    counted_before = postgres_unavailable_count()
    await asyncio.to_thread(take_down)
    during_key, during_body = new_key(), score_body(new_event_id())
    # Several requests: the first meets the pool's dead connections, later ones fail to connect.
    for _ in range(3):
        assert_unavailable(await post_score(client, during_key, during_body))
    assert_unavailable(await client.get(f"/v1/events/{stored.json()['id']}"))
    # Each 503 is counted: it is what the PostgreSQL-unavailable alert watches.
    assert postgres_unavailable_count() == counted_before + 4
    assert await readiness(client) == (
        503,
        {"status": "unready", "postgres": "down", "redis": "up"},
    )

    await asyncio.to_thread(server.start)
    # The key whose requests failed during the outage was not left locked or half-written.
    recovered = await poll_until_201(lambda: post_score(client, during_key, during_body))
    assert "idempotent-replayed" not in recovered.headers
    assert await readiness(client) == (200, {"status": "ready", "postgres": "up", "redis": "up"})

    replay = await post_score(client, before_key, before_body)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == stored.content


async def test_crashed_database_gives_503_then_the_app_recovers_when_it_returns(
    app_on_own_postgres: RunningApp, own_postgres: EmbeddedPostgres
) -> None:
    await check_outage_then_recovery(app_on_own_postgres, own_postgres, own_postgres.kill)


async def test_cleanly_restarted_database_gives_503_then_the_app_recovers(
    app_on_own_postgres: RunningApp, own_postgres: EmbeddedPostgres
) -> None:
    await check_outage_then_recovery(app_on_own_postgres, own_postgres, own_postgres.stop)


async def test_the_worker_counts_the_database_outages_it_waits_out(
    own_postgres: EmbeddedPostgres, own_settings: Settings
) -> None:
    def counted() -> float:
        labels = {"operation": "webhook_worker"}
        return REGISTRY.get_sample_value("riskgate_postgres_unavailable_total", labels) or 0.0

    async with running_worker(webhook_settings(own_settings, own_settings.database_url)):
        before = counted()
        await asyncio.to_thread(own_postgres.stop)
        try:
            deadline = time.monotonic() + RECOVERY_SECONDS
            while counted() == before:
                assert time.monotonic() < deadline, "the worker never counted the outage"
                await asyncio.sleep(0.05)
        finally:
            await asyncio.to_thread(own_postgres.start)

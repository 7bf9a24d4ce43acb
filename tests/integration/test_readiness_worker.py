"""The API's readiness with RISKGATE_WORKER_READY_URL (what `riskgate dev` sets): it reports a
real webhook worker up while it runs and down once it stops, staying 200 (degraded)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import fresh_database, running_app, settings_with
from riskgate.settings import Settings, SettingsError
from riskgate.webhooks.health import serve_health
from riskgate_dev.embedded import free_port
from webhook_support import running_worker, unique_db, webhook_settings


async def readiness(settings: Settings) -> tuple[int, dict[str, Any]]:
    async with running_app(settings) as app:
        response = await app.anonymous.get("/v1/health/ready")
        return response.status_code, response.json()


async def test_the_worker_is_reported_up_while_it_runs_and_down_after(
    settings: Settings, postgres_admin_url: str
) -> None:
    # A database of its own: a backlog other tests left would make the worker unready.
    url = await fresh_database(postgres_admin_url, unique_db("ready"))
    port = free_port()
    worker_settings = webhook_settings(settings, url, worker_port=port)
    ready_url = f"http://127.0.0.1:{port}/v1/health/ready"
    watching = settings_with(settings, database_url=url, worker_ready_url=ready_url)
    async with running_worker(worker_settings) as worker:
        server = await serve_health("127.0.0.1", port, worker.readiness)  # as `riskgate worker`
        try:
            assert await readiness(watching) == (
                200,
                {"status": "ready", "postgres": "up", "redis": "up", "worker": "up"},
            )
        finally:
            server.close()
            await server.wait_closed()
    assert await readiness(watching) == (
        200,
        {"status": "degraded", "postgres": "up", "redis": "up", "worker": "down"},
    )


async def test_without_the_setting_the_worker_is_not_mentioned(settings: Settings) -> None:
    status, body = await readiness(settings)
    assert (status, body.get("worker")) == (200, None)
    assert body["status"] == "ready"


@pytest.mark.parametrize("bad", ["ftp://worker/ready", "worker:8081", "http://", "http://a b"])
def test_a_ready_url_that_is_not_http_is_refused_naming_the_variable(
    settings: Settings, bad: str
) -> None:
    with pytest.raises(SettingsError, match="RISKGATE_WORKER_READY_URL"):
        settings_with(settings, worker_ready_url=bad)

"""Background loops that die do not die silently.

A loop is made to fail for real (a privilege revoked, a constraint added, in a database of the
test's own), not by patching code: the process logs the traceback, turns unready naming the
loop, stops, and exits non-zero so that its orchestrator restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from conftest import fresh_database, running_app, settings_with, superuser_url
from riskgate.settings import Settings
from riskgate.webhooks.worker import LoopDied, Worker
from webhook_receiver import Receiver
from webhook_support import KEYS, score, subscribe, unique_db, webhook_settings

pytestmark = pytest.mark.slow


async def own_database(admin_url: str, prefix: str, sabotage: str) -> str:
    """A migrated database of the test's own, sabotaged by the superuser; returns the app's URL."""
    name = unique_db(prefix)
    url = await fresh_database(admin_url, name)
    conn = await asyncpg.connect(superuser_url(admin_url, name))
    try:
        await conn.execute(sabotage)
    finally:
        await conn.close()
    return url


# The purge deletes expired idempotency records; without the privilege its statement fails.
NO_PURGE = "REVOKE DELETE ON idempotency_keys FROM riskgate_app"
# The recorder writes each attempt; a constraint refusing 2xx attempts makes that fail.
NO_RECORDING = (
    "ALTER TABLE webhook_attempts ADD CONSTRAINT refuse_2xx"
    " CHECK (status_code IS NULL OR status_code >= 300)"
)


async def test_a_dying_purge_task_makes_the_api_unready_and_stops_it(
    postgres_admin_url: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url = await own_database(postgres_admin_url, "purge", NO_PURGE)
    own = settings_with(settings, database_url=url, idempotency_purge_seconds=0.05)
    async with running_app(own) as app:
        await asyncio.wait_for(app.loop_died.wait(), 10)
        ready = await app.client.get("/v1/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unready",
        "postgres": "up",
        "redis": "up",
        "failed": "purge-idempotency-keys",
    }
    [died] = [r for r in caplog.records if r.getMessage().startswith("background task died")]
    assert died.levelno == logging.ERROR
    assert died.exc_info is not None
    assert isinstance(died.exc_info[1], asyncpg.InsufficientPrivilegeError)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.close()


async def test_a_dying_recorder_stops_the_worker_unready(
    postgres_admin_url: str,
    settings: Settings,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = await own_database(postgres_admin_url, "recorder", NO_RECORDING)
    own = webhook_settings(settings, url)
    async with running_app(own) as app:
        worker = Worker(own)
        run = asyncio.create_task(worker.run())
        await subscribe(app.client, receiver.url)
        await score(app.client)
        with pytest.raises(LoopDied, match="webhook-record"):
            await asyncio.wait_for(run, 30)
    assert worker.readiness() == (False, {"status": "unready", "failed": "webhook-record"})
    [died] = [r for r in caplog.records if r.getMessage().startswith("webhook worker loop died")]
    assert died.exc_info is not None
    assert isinstance(died.exc_info[1], asyncpg.CheckViolationError)


def run_until_exit(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=out)
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"still running after {timeout} s: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process.returncode


def process_env(url: str, settings: Settings, **more: str) -> dict[str, str]:
    return {
        "RISKGATE_DATABASE_URL": url,
        "RISKGATE_REDIS_URL": settings.redis_url,
        "RISKGATE_JWT_SIGNING_KEY_FILE": settings.jwt_signing_key_file,
        "RISKGATE_MODE": "dev",
        **more,
    }


async def test_riskgate_api_exits_non_zero_when_its_purge_task_dies(
    postgres_admin_url: str, settings: Settings, tmp_path: Path
) -> None:
    url = await own_database(postgres_admin_url, "apiexit", NO_PURGE)
    env = process_env(url, settings, RISKGATE_PORT="0", RISKGATE_IDEMPOTENCY_PURGE_SECONDS="0.1")
    log = tmp_path / "api.log"
    argv = [sys.executable, "-m", "riskgate", "api"]
    code = await asyncio.to_thread(run_until_exit, argv, env, log, 30)
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it was sent: status 143.
    assert code == -signal.SIGTERM, log.read_text()[-3000:]
    text = log.read_text()
    assert "background task died" in text
    assert "Application shutdown complete" in text
    assert "InsufficientPrivilegeError" in text


async def test_riskgate_worker_exits_non_zero_when_its_recorder_dies(
    postgres_admin_url: str, settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    url = await own_database(postgres_admin_url, "workerexit", NO_RECORDING)
    async with running_app(webhook_settings(settings, url)) as app:
        await subscribe(app.client, receiver.url)
        await score(app.client)
    env = process_env(
        url,
        settings,
        RISKGATE_WEBHOOK_ENCRYPTION_KEYS=KEYS,
        RISKGATE_WORKER_PORT="0",
        RISKGATE_WORKER_POLL_SECONDS="0.2",
    )
    log = tmp_path / "worker.log"
    argv = [sys.executable, "-m", "riskgate", "worker"]
    code = await asyncio.to_thread(run_until_exit, argv, env, log, 30)
    assert code == 1, log.read_text()[-3000:]
    text = log.read_text()
    assert "webhook worker loop died" in text
    assert "CheckViolationError" in text
    assert len(receiver.received) >= 1, "it delivered, then could not record it"

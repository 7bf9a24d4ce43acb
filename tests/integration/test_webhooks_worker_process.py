"""``riskgate worker`` as a real process: SIGKILL in the middle of a delivery loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import RunningApp, fresh_database, running_app
from riskgate.settings import Settings
from webhook_receiver import Received, Receiver
from webhook_support import KEYS, score, subscribe, unique_db, wait_delivery, webhook_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def hook_settings(postgres_admin_url: str, settings: Settings) -> Settings:
    url = await fresh_database(postgres_admin_url, unique_db("kill"))
    return webhook_settings(settings, url)


@pytest.fixture(scope="module")
async def app(hook_settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(hook_settings) as running:
        yield running


def start_worker(settings: Settings, signing_key_file: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RISKGATE_DATABASE_URL": settings.database_url,
        "RISKGATE_REDIS_URL": settings.redis_url,
        "RISKGATE_JWT_SIGNING_KEY_FILE": str(signing_key_file),
        "RISKGATE_WEBHOOK_ENCRYPTION_KEYS": KEYS,
        "RISKGATE_MODE": "dev",  # the receiver is on 127.0.0.1
        "RISKGATE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "RISKGATE_WORKER_LEASE_SECONDS": "3",
        "RISKGATE_WORKER_POLL_SECONDS": "0.2",
        "RISKGATE_WEBHOOK_RETRY_SCHEDULE": "0s,200ms,200ms,200ms",
        "RISKGATE_WORKER_PORT": "0",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "riskgate", "worker"], env=env, stdout=out, stderr=out
        )


async def test_a_worker_killed_mid_delivery_loses_nothing(
    app: RunningApp, hook_settings: Settings, signing_key_file: Path, tmp_path: Path
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def stall_the_first(request: Received) -> tuple[int, dict[str, str], bytes]:
        if not arrived.is_set():
            arrived.set()
            await release.wait()  # the worker dies while this request hangs
        return 200, {}, b"ok"

    receiver = await Receiver(stall_the_first).start()
    log = tmp_path / "worker.log"
    try:
        subscription = await subscribe(app.client, receiver.url)
        decision = await score(app.client)
        first = start_worker(hook_settings, signing_key_file, log)
        try:
            async with asyncio.timeout(20):
                await arrived.wait()
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        second = start_worker(hook_settings, signing_key_file, log)
        try:
            delivered = await wait_delivery(
                app.client, "succeeded", timeout=20, subscription_id=subscription["id"]
            )
        finally:
            second.terminate()
            assert second.wait(timeout=20) == 0, log.read_text()[-3000:]
        ids = {r.headers["webhook-id"] for r in receiver.received}
        assert ids == {delivered["id"]}, "the same message, possibly twice, never lost"
        assert len(receiver.received) >= 2
        assert json.loads(receiver.received[-1].body)["data"]["id"] == decision["id"]
        # Every attempt is kept, the one that died with the first worker too.
        [won, lost] = delivered["attempts"]
        assert (won["attempt"], won["outcome"], won["status_code"]) == (2, "succeeded", 200)
        assert (lost["attempt"], lost["outcome"], lost["error_class"]) == (
            1,
            "worker_lost",
            "worker_lost",
        )
        assert lost["duration_ms"] is None
        assert lost["started_at"] <= won["started_at"]
    finally:
        release.set()
        await receiver.close()

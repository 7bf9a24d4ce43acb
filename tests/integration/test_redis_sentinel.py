"""Redis behind Sentinel: the app finds the master through the sentinels and follows a failover.

Real servers: a master and a replica (both password-protected) and three sentinels with their
own password, on loopback ports, with failure detection tuned down so a killed master is
replaced in a few seconds. PostgreSQL stays the source of truth throughout: every key and
event exists exactly once whatever Redis did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from conftest import new_event_id, new_key, register_client, running_app, settings_with
from riskgate.settings import Settings
from riskgate_dev.embedded import EmbeddedRedis, EmbeddedSentinel, free_port

MASTER_NAME = "riskgate-test"
NODE_PASSWORD = "node-secret"
SENTINEL_PASSWORD = "sentinel-secret"
DB = 3
"""Not 0: shows the database number of RISKGATE_REDIS_URL reaches the master Sentinel names."""


@dataclass
class SentinelGroup:
    master: EmbeddedRedis
    replica: EmbeddedRedis
    sentinels: list[EmbeddedSentinel]

    def node(self, server: EmbeddedRedis) -> Redis:
        return Redis(host=server.host, port=server.port, password=NODE_PASSWORD, db=DB)

    def sentinel(self, index: int = 0) -> Redis:
        server = self.sentinels[index]
        return Redis(host=server.host, port=server.port, password=SENTINEL_PASSWORD)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _replica_in_sync(replica: Redis) -> bool:
    info = await replica.info("replication")
    return bool(info.get("master_link_status") == "up")


async def _sentinel_sees_everyone(sentinel: Redis) -> bool:
    state = await sentinel.sentinel_master(MASTER_NAME)
    return bool(state["num-slaves"] == 1 and state["num-other-sentinels"] == 2)


@pytest.fixture
async def group(data_root: Path) -> AsyncIterator[SentinelGroup]:
    """Master, replica and three sentinels that all know each other; stopped by PID after.

    Under ``data_root``, not pytest's basetemp: sentinels rewrite their config files as they
    run, and another pytest run may prune basetemp meanwhile."""
    tmp_path = data_root / f"sentinel-group-{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(EmbeddedRedis(tmp_path / "master", password=NODE_PASSWORD))
        replica = stack.enter_context(
            EmbeddedRedis(
                tmp_path / "replica", replica_of=(master.host, master.port), password=NODE_PASSWORD
            )
        )
        running = SentinelGroup(master, replica, [])
        async with contextlib.aclosing(running.node(replica)) as replica_client:
            await until(lambda: _replica_in_sync(replica_client), "the replica to sync")
        for i in range(3):
            sentinel = EmbeddedSentinel(
                tmp_path / f"sentinel-{i}",
                (master.host, master.port),
                master_name=MASTER_NAME,
                down_after_ms=1000,  # long enough to see the outage before the promotion
                password=SENTINEL_PASSWORD,
                master_password=NODE_PASSWORD,
            )
            running.sentinels.append(stack.enter_context(sentinel))
        for i in range(3):
            async with contextlib.aclosing(running.sentinel(i)) as client:
                await until(lambda: _sentinel_sees_everyone(client), "the sentinels to meet")
        yield running


def sentinel_settings(settings: Settings, group: SentinelGroup) -> Settings:
    dead = f"127.0.0.1:{free_port()}"  # one sentinel down from the start, as in a real outage
    return settings_with(
        settings,
        # Host and port are ignored with sentinels: only the password and database count.
        redis_url=f"redis://:{NODE_PASSWORD}@ignored.invalid:1/{DB}",
        redis_sentinels=",".join([dead, *(s.address for s in group.sentinels)]),
        redis_sentinel_master=MASTER_NAME,
        redis_sentinel_password=SENTINEL_PASSWORD,
        redis_retry_after_seconds=0.2,
    )


@dataclass(frozen=True)
class Scored:
    key: str
    body: dict[str, Any]
    response: httpx.Response


async def score(client: httpx.AsyncClient, times: int = 1) -> Scored:
    """POST /v1/score ``times`` at once with one key; exactly one of them may do the work."""
    key, body = (
        new_key(),
        {
            "event_id": new_event_id(),
            "source": "flight",
            "signals": {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0},
        },
    )
    responses = await asyncio.gather(
        *(
            client.post("/v1/score", json=body, headers={"Idempotency-Key": key})
            for _ in range(times)
        )
    )
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    return Scored(key, body, responses[0])


async def redis_status(client: httpx.AsyncClient) -> str:
    status: str = (await client.get("/v1/health/ready")).json()["redis"]
    return status


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


@pytest.mark.slow
async def test_the_app_follows_a_sentinel_failover_and_every_write_stays_exactly_once(
    settings: Settings, group: SentinelGroup, db: asyncpg.Connection[Any]
) -> None:
    async with (
        running_app(sentinel_settings(settings, group)) as app,
        contextlib.aclosing(group.node(group.master)) as old_master,
        contextlib.aclosing(group.node(group.replica)) as new_master,
        contextlib.aclosing(group.sentinel()) as sentinel,
    ):
        caller, issued = await register_client(app.runtime, rate_limit="100/1h")
        async with app.http_client({"X-API-Key": issued.api_key}) as client:
            before = await score(client)
            assert remaining(before.response) == 99  # decided in Redis, through Sentinel
            assert await old_master.exists(f"riskgate:idem:{caller.id}:{before.key}") == 1

            group.master.kill()  # SIGKILL: no goodbye to the replica or the sentinels
            assert await redis_status(client) == "down"
            during = await score(client, times=5)  # PostgreSQL alone keeps it exactly once
            assert "ratelimit" not in during.response.headers  # served unlimited, fail open

            async def promoted() -> bool:
                _, port = await sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
                return bool(int(port) == group.replica.port)

            async def reconnected() -> bool:
                return await redis_status(client) == "up"

            await until(promoted, "the sentinels to promote the replica")
            assert (await new_master.execute_command("ROLE"))[0] == b"master"
            await until(reconnected, "the app to find the new master, without a restart")

            after = await score(client)
            assert await new_master.exists(f"riskgate:idem:{caller.id}:{after.key}") == 1
            next_one = await client.get("/v1/events")
            assert remaining(next_one) == remaining(after.response) - 1  # limiting is back

            for write in (before, during, after):
                replay = await client.post(
                    "/v1/score", json=write.body, headers={"Idempotency-Key": write.key}
                )
                assert replay.headers["idempotent-replayed"] == "true"
                assert replay.content == write.response.content
                count = await db.fetchval(
                    "SELECT count(*) FROM events WHERE event_id = $1", write.body["event_id"]
                )
                assert count == 1


async def test_with_every_sentinel_unreachable_the_app_serves_as_with_redis_down(
    settings: Settings, db: asyncpg.Connection[Any]
) -> None:
    nobody = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    tuned = settings_with(settings, redis_sentinels=nobody, redis_retry_after_seconds=0.2)
    async with running_app(tuned) as app:
        started = time.monotonic()
        scored = await score(app.client, times=3)
        # Fail fast: no retries with backoff against sentinels that are not there.
        assert time.monotonic() - started < 3.0
        assert "ratelimit" not in scored.response.headers
        assert (await app.client.get("/v1/health/ready")).json() == {
            "status": "degraded",
            "postgres": "up",
            "redis": "down",
        }
    count = await db.fetchval(
        "SELECT count(*) FROM events WHERE event_id = $1", scored.body["event_id"]
    )
    assert count == 1

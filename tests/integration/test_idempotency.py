"""Idempotency keys, DESIGN section 2: replay, reuse, in-flight, expiry, crashes, Redis down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from conftest import RunningApp, new_event_id, new_key
from riskgate.settings import Settings
from riskgate_dev.embedded import EmbeddedRedis

PROBLEMS = "https://riskgate.io/problems/"


def score_body(event_id: str, delay: float = 0.7) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "flight",
        "signals": {"delay": delay, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0},
    }


async def post_score(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/score", json=body, headers={"Idempotency-Key": key})


async def events_with(db: asyncpg.Connection[Any], event_id: str) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM events WHERE event_id = $1", event_id)
    return count


async def test_same_key_same_body_replays_the_stored_response(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    key, body = new_key(), score_body(new_event_id())
    first = await post_score(client, key, body)
    again = await post_score(client, key, body)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await events_with(db, body["event_id"]) == 1


async def test_replay_ignores_key_order_and_number_spelling(client: httpx.AsyncClient) -> None:
    key, event_id = new_key(), new_event_id()
    first = await post_score(client, key, score_body(event_id, delay=0.5))
    reordered = (
        '{"signals": {"payment_anomaly": 0, "geo": 0.20, "weather": 0.5, "delay": 0.50},'
        f' "source": "flight", "event_id": "{event_id}"}}'
    )
    again = await client.post(
        "/v1/score",
        content=reordered,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content


async def test_same_key_different_body_is_409_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    key, event_id = new_key(), new_event_id()
    assert (await post_score(client, key, score_body(event_id, delay=0.1))).status_code == 201
    other = new_event_id()
    reused = await post_score(client, key, score_body(other, delay=0.9))
    assert reused.status_code == 409
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"] == PROBLEMS + "idempotency-key-reused"
    assert await events_with(db, other) == 0


async def test_fifty_concurrent_requests_with_one_key_store_one_event(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    key, body = new_key(), score_body(new_event_id())
    responses = await asyncio.gather(*(post_score(client, key, body) for _ in range(50)))

    created = [r for r in responses if r.status_code == 201]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_flight) == 50
    assert created, "at least the winner answers 201"
    assert len({r.content for r in created}) == 1, "every 201 is the same stored response"
    assert sum("idempotent-replayed" not in r.headers for r in created) == 1, "exactly one original"
    for r in in_flight:
        assert r.json()["type"] == PROBLEMS + "idempotency-key-in-flight"
        assert int(r.headers["retry-after"]) >= 1
    assert await events_with(db, body["event_id"]) == 1


async def test_an_expired_key_can_be_used_again(
    app: RunningApp, client: httpx.AsyncClient, db: asyncpg.Connection[Any], settings: Settings
) -> None:
    key = new_key()
    assert (await post_score(client, key, score_body(new_event_id()))).status_code == 201
    # 72 hours later: the record has expired, and the first request's lease long before it.
    await db.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1", key
    )
    redis = aioredis.from_url(settings.redis_url)
    try:
        await redis.delete(f"riskgate:idem:{app.caller.id}:{key}")
    finally:
        await redis.aclose()
    later = await post_score(client, key, score_body(new_event_id(), delay=0.2))
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers


async def test_keys_are_kept_for_72_hours(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    key = new_key()
    assert (await post_score(client, key, score_body(new_event_id()))).status_code == 201
    ttl = await db.fetchval(
        "SELECT expires_at - created_at FROM idempotency_keys WHERE key = $1", key
    )
    assert ttl.total_seconds() == 72 * 3600


async def test_a_lease_left_by_a_crashed_request_expires(
    app: RunningApp, client: httpx.AsyncClient, settings: Settings
) -> None:
    """A process that died holding the Redis lease blocks the key only until the lease ends."""
    key, body = new_key(), score_body(new_event_id())
    lease = f"riskgate:idem:{app.caller.id}:{key}"
    redis = aioredis.from_url(settings.redis_url)
    try:
        # Long enough that a slow machine still meets it; then cut short, and waited out.
        await redis.set(lease, "dead-owner", px=60_000)
        blocked = await post_score(client, key, body)
        assert blocked.status_code == 409
        assert blocked.json()["type"] == PROBLEMS + "idempotency-key-in-flight"
        await redis.pexpire(lease, 100)
        deadline = time.monotonic() + 10
        while await redis.exists(lease):
            assert time.monotonic() < deadline, "the lease never expired"
            await asyncio.sleep(0.02)
        assert (await post_score(client, key, body)).status_code == 201
    finally:
        await redis.aclose()


async def test_a_request_killed_mid_transaction_leaves_no_record(
    app: RunningApp, client: httpx.AsyncClient, db: asyncpg.Connection[Any], database_url: str
) -> None:
    """The PostgreSQL claim dies with its transaction: nothing to clean up, nothing stuck."""
    key, body = new_key(), score_body(new_event_id())
    victim = await asyncpg.connect(database_url)
    await victim.execute("BEGIN")
    await victim.execute(
        "SELECT claim_idempotency_key($1, $2, '\\x00'::bytea, 201::smallint, '{}'::jsonb,"
        " '\\x00'::bytea, 60)",
        app.caller.id,
        key,
    )
    pid = victim.get_server_pid()
    assert await db.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    victim.terminate()
    created = await post_score(client, key, body)
    assert created.status_code == 201
    assert "idempotent-replayed" not in created.headers


async def test_an_event_id_scored_under_another_key_is_409(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    event_id = new_event_id()
    assert (await post_score(client, new_key(), score_body(event_id))).status_code == 201
    second_key = new_key()
    duplicate = await post_score(client, second_key, score_body(event_id))
    assert duplicate.status_code == 409
    assert duplicate.json()["type"] == PROBLEMS + "event-already-scored"
    assert duplicate.json()["field"] == "event_id"
    assert await events_with(db, event_id) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", second_key) == 0
    )


# --- Redis is a fast path: without it scoring still works, exactly once --------------------------


@pytest.mark.slow
async def test_with_redis_down_scoring_stays_exactly_once(
    app_on_own_redis: RunningApp, own_redis: EmbeddedRedis, db: asyncpg.Connection[Any]
) -> None:
    client = app_on_own_redis.client
    assert (await post_score(client, new_key(), score_body(new_event_id()))).status_code == 201

    own_redis.kill()
    key, body = new_key(), score_body(new_event_id())
    responses = await asyncio.gather(*(post_score(client, key, body) for _ in range(20)))
    assert {r.status_code for r in responses} == {201}, [
        r.text for r in responses if r.status_code != 201
    ]
    assert len({r.content for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert await events_with(db, body["event_id"]) == 1

    ready = await client.get("/v1/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "postgres": "up", "redis": "down"}

    own_redis.start()
    await asyncio.sleep(0.3)  # past redis_retry_after_seconds: the guard tries Redis again
    assert (await post_score(client, new_key(), score_body(new_event_id()))).status_code == 201
    assert (await client.get("/v1/health/ready")).json()["status"] == "ready"

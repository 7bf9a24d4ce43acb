"""Per-client rate limits as the HTTP API shows them (DESIGN section 2, "Rate limits").

Each test uses clients of its own with their own policy, so buckets never leak between tests.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import RunningApp, new_event_id, new_key, register_client
from riskgate_dev.embedded import EmbeddedRedis

PROBLEMS = "https://riskgate.io/problems/"
LIST = "/v1/events"
RATE_HEADERS = (
    "ratelimit-policy",
    "ratelimit",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)
_POLICY = re.compile(r'"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)";q=(?P<q>\d+);w=(?P<w>\d+)')
_RATELIMIT = re.compile(r'"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)";r=(?P<r>\d+);t=(?P<t>\d+)')


@dataclass(frozen=True)
class Limits:
    """The rate-limit headers of one response, parsed and cross-checked."""

    limit: int
    window: int
    remaining: int
    reset: int
    t: int

    @classmethod
    def of(cls, response: httpx.Response) -> Limits:
        missing = [name for name in RATE_HEADERS if name not in response.headers]
        assert not missing, f"{response.status_code} lacks {missing}"
        policy = _POLICY.fullmatch(response.headers["ratelimit-policy"])
        current = _RATELIMIT.fullmatch(response.headers["ratelimit"])
        assert policy, response.headers["ratelimit-policy"]
        assert current, response.headers["ratelimit"]
        assert policy["name"] == current["name"]
        assert response.headers["x-ratelimit-limit"] == policy["q"]
        assert response.headers["x-ratelimit-remaining"] == current["r"]
        return cls(
            limit=int(policy["q"]),
            window=int(policy["w"]),
            remaining=int(current["r"]),
            reset=int(response.headers["x-ratelimit-reset"]),
            t=int(current["t"]),
        )


def score_body(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "flight",
        "signals": {"delay": 0.5, "weather": 0, "geo": 0, "payment_anomaly": 0},
    }


def has_no_rate_headers(response: httpx.Response) -> bool:
    return not any(name in response.headers for name in (*RATE_HEADERS, "retry-after"))


@pytest.fixture
async def limited(app: RunningApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client allowed 10 requests per hour (a refill every 6 minutes: none during a test)."""
    _, issued = await register_client(app.runtime, rate_limit="10/1h")
    async with app.http_client({"X-API-Key": issued.api_key}) as client:
        yield client


async def test_n_plus_k_concurrent_requests_at_limit_n_get_exactly_k_429s(
    limited: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(*(limited.get(LIST) for _ in range(15)))

    allowed = [r for r in responses if r.status_code == 200]
    denied = [r for r in responses if r.status_code == 429]
    assert (len(allowed), len(denied)) == (10, 5), [r.status_code for r in responses]

    for response in responses:
        limits = Limits.of(response)
        assert (limits.limit, limits.window) == (10, 3600)

    # Each allowed request took one of the 10: the remaining counts are 9, 8, ..., 0.
    assert sorted(Limits.of(r).remaining for r in allowed) == list(range(10))
    for response in allowed:
        limits = Limits.of(response)
        used = 10 - limits.remaining
        # Full again after `used` refills of 360 s each (a few ms may already have refilled).
        assert used * 360 - 1 <= limits.reset <= used * 360
        assert limits.t == limits.reset
        assert "retry-after" not in response.headers

    for response in denied:
        limits = Limits.of(response)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == PROBLEMS + "rate-limited"
        assert problem["status"] == 429
        retry_after = int(response.headers["retry-after"])
        assert 359 <= retry_after <= 360, "one request fits again after one refill interval"
        assert limits.remaining == 0
        # X-RateLimit-Reset, RateLimit's t and Retry-After name one moment.
        assert limits.t == retry_after
        assert limits.reset == retry_after


async def test_a_429_on_score_writes_nothing_and_other_clients_are_unaffected(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    _, issued = await register_client(app.runtime, rate_limit="1/1h")
    async with app.http_client({"X-API-Key": issued.api_key}) as client:
        assert (await client.get(LIST)).status_code == 200

        key, event_id = new_key(), new_event_id()
        refused = await client.post(
            "/v1/score", json=score_body(event_id), headers={"Idempotency-Key": key}
        )
        assert refused.status_code == 429
        assert refused.json()["type"] == PROBLEMS + "rate-limited"
        assert "location" not in refused.headers

    assert await db.fetchval("SELECT count(*) FROM events WHERE event_id = $1", event_id) == 0
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 0
    assert (
        await db.fetchval(
            "SELECT count(*) FROM audit_log WHERE details::text LIKE '%' || $1 || '%'", event_id
        )
        == 0
    )

    _, other = await register_client(app.runtime, rate_limit="1/1h")
    async with app.http_client({"X-API-Key": other.api_key}) as client:
        response = await client.get(LIST)
        assert response.status_code == 200
        assert Limits.of(response).remaining == 0


async def test_error_responses_on_a_limited_route_carry_the_headers_and_count(
    app: RunningApp, limited: httpx.AsyncClient
) -> None:
    not_found = await limited.get(f"{LIST}/{uuid.uuid4()}")
    invalid = await limited.get(LIST, params={"limit": 0})
    no_key = await limited.post("/v1/score", json=score_body(new_event_id()))
    malformed = await limited.post(
        "/v1/score",
        content=b"{",
        headers={"Idempotency-Key": new_key(), "content-type": "application/json"},
    )
    _, narrow = await register_client(app.runtime, "score:write", rate_limit="10/1h")
    async with app.http_client({"X-API-Key": narrow.api_key}) as client:
        forbidden = await client.get(LIST)

    assert [r.status_code for r in (not_found, invalid, no_key, malformed, forbidden)] == [
        404,
        422,
        400,
        400,
        403,
    ]
    assert [Limits.of(r).remaining for r in (not_found, invalid, no_key, malformed)] == [9, 8, 7, 6]
    assert Limits.of(forbidden).remaining == 9


async def test_public_endpoints_carry_no_rate_limit_headers(app: RunningApp) -> None:
    client = app.client  # credentials present, but public routes never consult the limiter
    responses = [
        await client.get("/v1/health"),
        await client.get("/v1/health/ready"),
        await client.get("/.well-known/jwks.json"),
        await client.get("/metrics"),
        await client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": app.credentials.client_id,
                "client_secret": app.credentials.client_secret,
            },
        ),
        await client.post("/oauth2/token", data={"grant_type": "client_credentials"}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 401]
    for response in responses:
        assert has_no_rate_headers(response), (response.url, dict(response.headers))


# --- Redis down: serve without limiting (fail open, documented in ratelimit.limiter) -------------


@pytest.mark.slow
async def test_with_redis_down_requests_are_served_unlimited_with_the_policy_header(
    app_on_own_redis: RunningApp, own_redis: EmbeddedRedis
) -> None:
    _, issued = await register_client(app_on_own_redis.runtime, rate_limit="1/1h")
    async with app_on_own_redis.http_client({"X-API-Key": issued.api_key}) as client:
        assert (await client.get(LIST)).status_code == 200
        assert (await client.get(LIST)).status_code == 429

        own_redis.kill()
        responses = await asyncio.gather(*(client.get(LIST) for _ in range(3)))

    for response in responses:
        assert response.status_code == 200, response.text
        assert _POLICY.fullmatch(response.headers["ratelimit-policy"])
        assert response.headers["ratelimit-policy"].endswith(";q=1;w=3600")
        assert response.headers["x-ratelimit-limit"] == "1"
        # Without a decision there is nothing true to say about what remains.
        assert "ratelimit" not in response.headers
        assert "x-ratelimit-remaining" not in response.headers
        assert "retry-after" not in response.headers

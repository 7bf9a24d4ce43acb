"""Rate limits, DESIGN section 2: exact under concurrency, per client, headers, Redis down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.asyncio.client import Redis

from riskgate.ratelimit import (
    RateLimitDecision,
    RateLimiter,
    RateLimitPolicy,
    policy_headers,
    rate_limit_headers,
)
from riskgate.ratelimit.limiter import bucket_key
from riskgate.redis_fastpath import RedisGuard

HOUR = 3600  # a window long enough that nothing refills while a test runs


def redis_client(url: str, timeout: float) -> Redis:
    """Configured like ``redis_fastpath.connect``: a socket timeout and no retry."""
    client: Redis = aioredis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
    )
    return client


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    # Generous timeout: a burst of 70 new connections on a loaded test machine can take longer
    # than production's 0.25 s, and these tests are about counting, not about timeouts.
    client = redis_client(redis_url, timeout=5.0)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def limiter(redis: Redis) -> RateLimiter:
    return RateLimiter(RedisGuard(redis, retry_after=1.0))


def new_subject() -> str:
    return str(uuid.uuid4())


def new_policy(limit: int, window_seconds: int) -> RateLimitPolicy:
    """A policy with a name of its own, so metric deltas belong to this test alone."""
    return RateLimitPolicy(f"t-{uuid.uuid4().hex[:12]}", limit, window_seconds)


async def hit(limiter: RateLimiter, subject: str, policy: RateLimitPolicy) -> RateLimitDecision:
    decision = await limiter.hit(subject, policy)
    assert decision is not None
    return decision


async def seconds_until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll ``check`` every 20 ms; return how long it took to become true."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- policies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("600/60s", 600, 60),
        ("100/1m", 100, 60),
        ("5000/1h", 5000, 3600),
        ("10/s", 10, 1),
        ("1/1s", 1, 1),
        ("100000/1d", 100000, 86400),
        ("30/90s", 30, 90),
        (" 100 / 15m ", 100, 900),
    ],
)
def test_policy_text_is_parsed(text: str, limit: int, window: int) -> None:
    assert RateLimitPolicy.parse(text) == RateLimitPolicy("default", limit, window)
    assert RateLimitPolicy.parse(text, name="burst").name == "burst"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not of the form"),
        ("600", "is not of the form"),
        ("600/60", "is not of the form"),
        ("600/60x", "is not of the form"),
        ("600/60S", "is not of the form"),
        ("-1/60s", "is not of the form"),
        ("1.5/60s", "is not of the form"),
        ("600 per minute", "is not of the form"),
        ("60s/600", "is not of the form"),
        ("0/60s", "limit must be an integer >= 1"),
        ("600/0s", "window_seconds must be an integer >= 1"),
        ("99999999999/1d", "too large to count exactly"),
    ],
)
def test_bad_policy_text_is_a_clear_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        RateLimitPolicy.parse(text)
    if "form" in message:
        assert repr(text) in str(raised.value)  # the message quotes what was given


@pytest.mark.parametrize("name", ["", "has space", 'quo"te', "-lead", "x" * 65, "é"])
def test_policy_names_must_be_plain(name: str) -> None:
    with pytest.raises(ValueError, match="policy name"):
        RateLimitPolicy(name, 10, 60)


# --- counting -------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "extra"), [(1, 1), (1, 9), (5, 3), (50, 20)])
async def test_concurrent_burst_denies_exactly_the_excess(
    limiter: RateLimiter, limit: int, extra: int
) -> None:
    policy, subject = new_policy(limit, HOUR), new_subject()
    decisions = await asyncio.gather(*(hit(limiter, subject, policy) for _ in range(limit + extra)))
    allowed = [d for d in decisions if d.allowed]
    denied = [d for d in decisions if not d.allowed]
    assert len(denied) == extra
    # Each allowed request saw one token fewer: together they count down limit-1 .. 0.
    assert sorted(d.remaining for d in allowed) == list(range(limit))
    assert all(d.remaining == 0 and d.retry_after_seconds >= 1 for d in denied)
    assert all(d.retry_after_seconds == 0 for d in allowed)


async def test_remaining_and_reset_count_one_request_at_a_time(limiter: RateLimiter) -> None:
    policy, subject = new_policy(5, HOUR), new_subject()  # one token back every 720 s
    for used in range(1, 6):
        decision = await hit(limiter, subject, policy)
        assert decision.allowed
        assert decision.remaining == 5 - used
        assert used * 720 - 1 <= decision.reset_seconds <= used * 720
    denied = await hit(limiter, subject, policy)
    assert not denied.allowed
    assert denied.remaining == 0
    assert 719 <= denied.retry_after_seconds <= 720
    assert HOUR - 1 <= denied.reset_seconds <= HOUR


async def test_subjects_and_policies_have_separate_buckets(limiter: RateLimiter) -> None:
    policy, other_policy = new_policy(2, HOUR), new_policy(2, HOUR)
    subject, other_subject = new_subject(), new_subject()
    for _ in range(3):
        await hit(limiter, subject, policy)
    assert not (await hit(limiter, subject, policy)).allowed
    fresh = await hit(limiter, other_subject, policy)
    assert fresh.allowed
    assert fresh.remaining == 1
    fresh = await hit(limiter, subject, other_policy)
    assert fresh.allowed
    assert fresh.remaining == 1


async def test_quota_comes_back_after_the_window_and_the_key_expires(
    limiter: RateLimiter, redis: Redis
) -> None:
    policy, subject = new_policy(2, 1), new_subject()  # one token back every 500 ms
    key = bucket_key(policy, subject)
    await hit(limiter, subject, policy)
    await hit(limiter, subject, policy)
    denied = await hit(limiter, subject, policy)
    assert not denied.allowed
    assert denied.retry_after_seconds == 1
    assert denied.reset_seconds == 1
    assert 0 < await redis.pttl(key) <= 1000

    async def bucket_full() -> bool:
        return not await redis.exists(key)

    assert await seconds_until(bucket_full, within=3.0) <= 1.5
    again = await hit(limiter, subject, policy)
    assert again.allowed
    assert again.remaining == 1


async def test_denied_requests_do_not_consume_quota(limiter: RateLimiter) -> None:
    policy, subject = new_policy(2, 1), new_subject()
    await asyncio.gather(hit(limiter, subject, policy), hit(limiter, subject, policy))

    async def one_allowed() -> bool:
        # Ten denied requests per poll: if they cost quota, the bucket would never reopen.
        decisions = await asyncio.gather(*(hit(limiter, subject, policy) for _ in range(10)))
        return any(d.allowed for d in decisions)

    assert 0.35 <= await seconds_until(one_allowed, within=3.0) <= 0.9


async def test_the_largest_policy_is_counted_exactly(limiter: RateLimiter, redis: Redis) -> None:
    # limit * window_ms at the 2**52 bound: the stored count must keep all 16 digits.
    policy, subject = new_policy(1, 2**52 // 1000), new_subject()
    assert (await hit(limiter, subject, policy)).allowed
    assert await redis.hget(bucket_key(policy, subject), "u") == b"4503599627370000"
    denied = await hit(limiter, subject, policy)
    assert not denied.allowed
    assert policy.window_seconds - 1 <= denied.retry_after_seconds <= policy.window_seconds


async def test_works_after_redis_forgets_the_script(limiter: RateLimiter, redis: Redis) -> None:
    await redis.script_flush()  # as after a Redis restart or failover
    assert (await hit(limiter, new_subject(), new_policy(3, HOUR))).remaining == 2


# --- Redis down -----------------------------------------------------------------------------


async def test_redis_down_fails_open_fast_and_is_counted() -> None:
    client = redis_client("redis://127.0.0.1:1/0", timeout=0.25)  # nothing listens on port 1
    limiter = RateLimiter(RedisGuard(client, retry_after=60.0))
    policy = new_policy(1, HOUR)
    fallbacks = "riskgate_redis_unavailable_total"
    before = metric(fallbacks, operation="rate_limit")
    try:
        start = time.monotonic()
        assert await limiter.hit(new_subject(), policy) is None  # tries, fails, trips the guard
        assert await limiter.hit(new_subject(), policy) is None  # cool-down: not even tried
        assert time.monotonic() - start < 0.5
    finally:
        await client.aclose()
    assert metric(fallbacks, operation="rate_limit") == before + 2


# --- headers --------------------------------------------------------------------------------


def test_headers_of_an_allowed_request() -> None:
    policy = RateLimitPolicy("default", 600, 60)
    decision = RateLimitDecision(policy, True, 599, 1, 0)
    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"default";q=600;w=60',
        "RateLimit": '"default";r=599;t=1',
        "X-RateLimit-Limit": "600",
        "X-RateLimit-Remaining": "599",
        "X-RateLimit-Reset": "1",
    }


def test_headers_of_a_denied_request_agree_with_retry_after() -> None:
    policy = RateLimitPolicy("burst", 5, 3600)
    decision = RateLimitDecision(policy, False, 0, 3598, 718)
    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"burst";q=5;w=3600',
        "RateLimit": '"burst";r=0;t=718',
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "718",
        "Retry-After": "718",
    }


def test_policy_headers_are_what_holds_without_redis() -> None:
    assert policy_headers(RateLimitPolicy.parse("5000/1h")) == {
        "RateLimit-Policy": '"default";q=5000;w=3600',
        "X-RateLimit-Limit": "5000",
    }


async def test_headers_from_real_decisions(limiter: RateLimiter) -> None:
    policy, subject = new_policy(2, 10), new_subject()
    first = rate_limit_headers(await hit(limiter, subject, policy))
    assert first["RateLimit"] == f'"{policy.name}";r=1;t=5'
    await hit(limiter, subject, policy)
    denied = rate_limit_headers(await hit(limiter, subject, policy))
    assert denied["RateLimit"] == f'"{policy.name}";r=0;t=5'
    assert denied["Retry-After"] == "5"
    assert denied["X-RateLimit-Reset"] == "5"

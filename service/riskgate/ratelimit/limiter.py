"""Per-client rate limits: a token bucket in Redis, one atomic script call per request.

Each (policy, subject) pair has a bucket of ``limit`` requests that refills continuously at
``limit / window`` requests per second (so a full bucket is also a burst of at most ``limit``).
A request takes one token if there is one, and is denied otherwise; a denied request takes
nothing, so hammering a closed bucket does not keep it closed.

The script (``token_bucket.lua``) counts in integer units so that nothing drifts: with time ``t``
in milliseconds on Redis's own clock (``TIME``, so the clocks of API pods do not matter),
``W = window_seconds * 1000`` and ``L = limit``, a request costs ``W`` units, the bucket
refills ``L`` units per millisecond and holds ``C = L * W`` units. The stored state is ``u``,
the units used at time ``t0`` (no key means ``u = 0``, a full bucket)::

    u(t)      = max(0, u(t0) - L * min(max(t - t0, 0), W))
    allowed   = u(t) + W <= C                      (then u(t) += W is stored, with t0 = t)
    remaining = floor((C - u) / W)                 (u after this request)
    reset     = ceil(ceil(u / L) / 1000)           seconds until the bucket is full again
    retry     = ceil(ceil((u + W - C) / L) / 1000) seconds until one request fits (denied only)

The key expires ``ceil(u / L)`` ms after each accepted request, i.e. exactly when the bucket is
full again, so idle clients cost no memory. All values stay below ``2 ** 53`` (checked when the
policy is built), where Lua's doubles are exact integers. Every decision happens inside one
script run, which Redis executes atomically: ``N + k`` concurrent requests against a full bucket
of ``N`` (within one refill interval ``window / limit``) are exactly ``k`` denials.

The bucket's units depend on the policy: changing ``limit`` or ``window`` under the same policy
name reinterprets existing buckets for at most one window (they drain to empty meanwhile).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, cast

from redis.asyncio.client import Redis

from riskgate.redis_fastpath import RedisGuard, load_script

KEY_PREFIX: Final = "riskgate:rl:"

_MAX_UNITS: Final = 2**52
"""Bound on ``limit * window_ms``: the script adds to that, and must stay below 2**53."""

_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_POLICY_TEXT: Final = re.compile(
    r"(?P<limit>[0-9]+)\s*/\s*(?P<count>[0-9]*)\s*(?P<unit>[smhd])", re.ASCII
)
API_POLICY_PATTERN: Final = (
    r"^[1-9][0-9]{0,6}/(?:(?:[1-9][0-9]{0,4})?s|(?:[1-9][0-9]{0,2})?m|(?:[1-9][0-9]?)?h|[1-5]?d)$"
)
"""The policies a client can be given over the API (``100/60s``, ``10/s``, ``5000/1h``): a
subset of what ``RateLimitPolicy.parse`` reads, bounded per unit so that every one it matches is
within the exact-count bound. So the OpenAPI document and the ApiClient CRD, which state this
pattern, never allow a policy the service then refuses."""
# A policy name lands in a Redis key, a metric label and a structured-field string: keep it plain.
_POLICY_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """A quota: ``limit`` requests per ``window_seconds``, per subject (client)."""

    name: str
    """Appears in headers and the metric label: configured, never client input."""
    limit: int
    window_seconds: int

    def __post_init__(self) -> None:
        if not _POLICY_NAME.fullmatch(self.name):
            raise ValueError(
                f"rate limit policy name {self.name!r} must be 1-64 characters of letters, "
                "digits, '_', '.' or '-', starting with a letter or digit"
            )
        for field, value in (("limit", self.limit), ("window_seconds", self.window_seconds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"rate limit {field} must be an integer >= 1, got {value!r}")
        if self.limit * self.window_seconds * 1000 > _MAX_UNITS:
            raise ValueError(
                f"rate limit {self.limit}/{self.window_seconds}s is too large to count exactly "
                f"(limit * window_seconds must be at most {_MAX_UNITS // 1000})"
            )

    @classmethod
    def parse(cls, text: str, name: str = "default") -> RateLimitPolicy:
        """``"600/60s"``, ``"100/1m"``, ``"5000/1h"``, ``"10/s"``: requests / window.

        Units are ``s``, ``m``, ``h`` and ``d``; a window without a number means one unit.
        Anything else is a ``ValueError`` that quotes the text and shows the expected form.
        """
        match = _POLICY_TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"rate limit {text!r} is not of the form <requests>/<window>, e.g. '600/60s', "
                "'100/1m' or '5000/1h' (window units: s, m, h, d)"
            )
        count = int(match["count"]) if match["count"] else 1
        return cls(
            name=name,
            limit=int(match["limit"]),
            window_seconds=count * _UNIT_SECONDS[match["unit"]],
        )


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one request against a policy."""

    policy: RateLimitPolicy
    allowed: bool
    remaining: int
    """Requests that would be allowed right now (>= 0)."""
    reset_seconds: int
    """Seconds until the quota is fully available again (>= 0, rounded up)."""
    retry_after_seconds: int
    """When denied: seconds until at least one request is allowed (>= 1); 0 when allowed."""


def bucket_key(policy: RateLimitPolicy, subject: str) -> str:
    return f"{KEY_PREFIX}{policy.name}:{subject}"


class RateLimiter:
    """Takes one request from a subject's bucket: one EVALSHA, atomic, on Redis's clock."""

    def __init__(self, redis: RedisGuard) -> None:
        self._redis = redis
        self._script = load_script(redis.client, __package__ or __name__, "token_bucket.lua")

    async def hit(self, subject: str, policy: RateLimitPolicy) -> RateLimitDecision | None:
        """Count one request of ``subject`` against ``policy``.

        None when Redis is unavailable: the caller then serves without limiting (fail open, by
        design; the guard records ``riskgate_redis_unavailable_total{operation="rate_limit"}``).
        Denials are not counted here: whoever turns one into a 429 calls
        :func:`~riskgate.observability.metrics.record_rate_limited`.
        """
        keys = [bucket_key(policy, subject)]
        args = [policy.limit, policy.window_seconds * 1000]

        async def take(_: Redis) -> list[int]:
            return cast(list[int], await self._script(keys=keys, args=args))

        reply = await self._redis.call("rate_limit", take)
        return None if reply is None else _decision(policy, reply)


def _decision(policy: RateLimitPolicy, reply: list[int]) -> RateLimitDecision:
    allowed, remaining, full_in_ms, retry_in_ms = (int(value) for value in reply)
    return RateLimitDecision(
        policy=policy,
        allowed=bool(allowed),
        remaining=max(remaining, 0),
        reset_seconds=_ceil_seconds(full_in_ms),
        retry_after_seconds=0 if allowed else max(_ceil_seconds(retry_in_ms), 1),
    )


def _ceil_seconds(milliseconds: int) -> int:
    return max(-(-milliseconds // 1000), 0)


def policy_headers(policy: RateLimitPolicy) -> dict[str, str]:
    """The headers that hold without a decision (e.g. Redis down): the policy and its limit.

    ``RateLimit-Policy: "<name>";q=<limit>;w=<window seconds>`` as in
    draft-ietf-httpapi-ratelimit-headers-11 (23 May 2026) section 3, plus the legacy
    ``X-RateLimit-Limit``.
    """
    return {
        "RateLimit-Policy": f'"{policy.name}";q={policy.limit};w={policy.window_seconds}',
        "X-RateLimit-Limit": str(policy.limit),
    }


def rate_limit_headers(decision: RateLimitDecision) -> dict[str, str]:
    """Every rate-limit header for a response, following draft-ietf-httpapi-ratelimit-headers-11.

    * ``RateLimit-Policy`` and ``X-RateLimit-Limit``: see :func:`policy_headers`.
    * ``RateLimit: "<name>";r=<remaining>;t=<seconds>`` (draft section 4). ``t`` is the
      effective window, within which the client can use no more than ``r``: the time until the
      bucket is full again when allowed, and when denied the ``Retry-After`` delay, because the
      draft (section 6) says Retry-After should not point earlier than the end of the window.
    * ``X-RateLimit-Remaining``; ``X-RateLimit-Reset`` in delta-seconds (not a Unix timestamp as
      GitHub sends: no clock to agree on) until the quota is fully available again, and on a
      denial the same ``t``: a client that waits for the reset must not be told a later time
      than ``Retry-After`` by one header and an earlier one by another.
    * ``Retry-After`` (delta-seconds, >= 1) on a denial only.
    """
    headers = policy_headers(decision.policy)
    window = decision.reset_seconds if decision.allowed else decision.retry_after_seconds
    headers["RateLimit"] = f'"{decision.policy.name}";r={decision.remaining};t={window}'
    headers["X-RateLimit-Remaining"] = str(decision.remaining)
    headers["X-RateLimit-Reset"] = str(window)
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after_seconds)
    return headers

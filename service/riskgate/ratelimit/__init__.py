"""Per-client rate limits: an atomic token bucket in Redis, and the headers that describe it."""

from riskgate.ratelimit.limiter import (
    RateLimitDecision,
    RateLimiter,
    RateLimitPolicy,
    policy_headers,
    rate_limit_headers,
)

__all__ = [
    "RateLimitDecision",
    "RateLimitPolicy",
    "RateLimiter",
    "policy_headers",
    "rate_limit_headers",
]

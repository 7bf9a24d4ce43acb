"""Limits on failed client authentications, per client_id and per source address.

Guessing a client secret costs us a scrypt hash per guess; these limits stop a guesser after a
few tries per window, before the hash is computed. Each attempt is counted *before* its secret
is checked and taken back if it succeeds (one atomic script call each way, ``failed_attempts.lua``),
so concurrent guesses cannot overshoot a limit and a client that authenticates is never counted.
Fixed windows: a subject at its limit waits until its window ends (the ``Retry-After``).

Like the request rate limits, these fail open when Redis is unavailable; the bounded pool that
hashes secrets still keeps the event loop free then.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Final, cast

from redis.asyncio.client import Redis

from riskgate.ratelimit.limiter import RateLimitPolicy
from riskgate.redis_fastpath import RedisGuard, load_script

KEY_PREFIX: Final = "riskgate:authfail:"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One authentication attempt as the limits saw it."""

    keys: tuple[str, ...]
    counted: bool
    """Whether it was counted (and must be released if it succeeds); False when Redis is down."""
    blocked_by: RateLimitPolicy | None = None
    retry_after_seconds: int = 0


def address_subject(host: str) -> str:
    """The source address a limit applies to: IPv4 as is, IPv6 by its /64 (one host commonly
    holds a whole /64, so counting single addresses would be no limit at all)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailedAttemptLimits:
    def __init__(
        self, redis: RedisGuard, per_client: RateLimitPolicy, per_address: RateLimitPolicy
    ) -> None:
        self._redis = redis
        self._policies = (per_client, per_address)
        self._script = load_script(redis.client, __package__ or __name__, "failed_attempts.lua")

    def _keys(self, client_id: str, address: str) -> tuple[str, ...]:
        # client_id is whatever the caller sent (up to 512 characters): hashed into a plain key.
        client = hashlib.sha256(client_id.encode()).hexdigest()[:32]
        return (f"{KEY_PREFIX}client:{client}", f"{KEY_PREFIX}address:{address_subject(address)}")

    async def reserve(self, client_id: str, address: str) -> Attempt:
        """Count an attempt, or say which limit refuses it and for how long."""
        keys = self._keys(client_id, address)
        args: list[str | int] = ["reserve"]
        for policy in self._policies:
            args += [policy.limit, policy.window_seconds * 1000]
        reply = await self._run(keys, args)
        if reply is None:
            return Attempt(keys, counted=False)
        wait_ms, blocking = (int(value) for value in reply)
        if wait_ms == 0:
            return Attempt(keys, counted=True)
        return Attempt(
            keys,
            counted=False,
            blocked_by=self._policies[blocking - 1],
            retry_after_seconds=max(1, -(-wait_ms // 1000)),
        )

    async def release(self, attempt: Attempt) -> None:
        """The attempt did not fail after all (authenticated, or the check never ran)."""
        if attempt.counted:
            await self._run(attempt.keys, ["release"])

    async def _run(self, keys: tuple[str, ...], args: list[str | int]) -> list[int] | None:
        async def call(_: Redis) -> list[int]:
            return cast(list[int], await self._script(keys=list(keys), args=args))

        return await self._redis.call("token_failures", call)

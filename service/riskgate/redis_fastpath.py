"""Redis as a fast path that is allowed to vanish.

Redis holds locks and counters, never data. When it is unreachable every caller degrades to its
PostgreSQL-only behaviour; to avoid paying a timeout on every request while it is down, the
guard remembers a failure and skips Redis for ``retry_after`` seconds before trying again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from riskgate.observability.metrics import RedisOperation, record_redis_fallback
from riskgate.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


def connect(settings: Settings) -> Redis:
    client: Redis = aioredis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
        # Failing fast matters more than one retry: the caller has a PostgreSQL fallback.
        retry_on_timeout=False,
    )
    return client


def load_script(client: Redis, package: str, filename: str) -> AsyncScript:
    """Register a Lua script shipped beside the code; redis-py runs it by SHA (EVALSHA)."""
    source = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return client.register_script(source)


class RedisGuard:
    """Runs Redis calls, turning an outage into ``None`` and a short cool-down."""

    def __init__(self, client: Redis, retry_after: float) -> None:
        self.client = client
        self._retry_after = retry_after
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def call(
        self, operation: RedisOperation, fn: Callable[[Redis], Awaitable[T]]
    ) -> T | None:
        """``fn(client)``, or None when Redis is (or just went) unavailable."""
        if not self.available:
            record_redis_fallback(operation)
            return None
        try:
            return await fn(self.client)
        except (RedisError, OSError) as exc:
            self._trip(operation, exc)
            return None

    async def ping(self) -> bool:
        """Health probe: always asks Redis, ignoring (and resetting) the cool-down."""
        try:
            await self.client.ping()
        except (RedisError, OSError):
            return False
        self._down_until = 0.0
        return True

    def _trip(self, operation: RedisOperation, exc: BaseException) -> None:
        record_redis_fallback(operation)
        if self.available:
            logger.warning(
                "redis unavailable, continuing without it",
                extra={"operation": operation, "error": type(exc).__name__},
            )
        self._down_until = time.monotonic() + self._retry_after

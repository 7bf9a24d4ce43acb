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
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from riskgate.observability.metrics import RedisOperation, record_redis_fallback
from riskgate.redis_config import parse_sentinels
from riskgate.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _fail_fast(settings: Settings) -> dict[str, Any]:
    timeout = settings.redis_timeout_seconds
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        # Failing fast matters more than one retry: the caller has a PostgreSQL fallback. Set
        # explicitly: redis-py's default for a client built from host and port (as the sentinel
        # clients are) is three retries with seconds of backoff.
        "retry": Retry(NoBackoff(), retries=0),
    }


def connect(settings: Settings) -> Redis:
    """A client of the one Redis at ``redis_url``."""
    client: Redis = aioredis.from_url(settings.redis_url, **_fail_fast(settings))
    return client


def open_guard(settings: Settings) -> RedisGuard:
    """The process's Redis: ``redis_url`` itself, or with ``redis_sentinels`` the current
    master that the sentinels name, followed across failovers."""
    if not settings.redis_sentinels:
        return RedisGuard(connect(settings), settings.redis_retry_after_seconds)
    node = _node_options(settings.redis_url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        parse_sentinels(settings.redis_sentinels),
        sentinel_kwargs=_sentinel_options(settings, node),
        **{**node, **_fail_fast(settings)},
    )
    # Each new connection asks the sentinels where the master is, and a node that answers
    # READONLY (a demoted master) drops the connection, so a failover costs the guard's
    # cool-down, not a restart.
    client: Redis = sentinel.master_for(settings.redis_sentinel_master)
    return RedisGuard(client, settings.redis_retry_after_seconds, sentinel=sentinel)


def _node_options(url: str) -> dict[str, Any]:
    """What ``redis_url`` says about the data nodes, minus the address Sentinel supplies."""
    options: dict[str, Any] = dict(parse_url(url))
    options.pop("host", None)
    options.pop("port", None)
    # The sentinel pool picks its own connection class; it takes TLS as a flag.
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options


def _sentinel_options(settings: Settings, node: dict[str, Any]) -> dict[str, Any]:
    """Sentinels speak TLS when the nodes do (one deployment), and have their own password."""
    options = {k: v for k, v in node.items() if k.startswith("ssl")} | _fail_fast(settings)
    if settings.redis_sentinel_password:
        options["password"] = settings.redis_sentinel_password
    return options


def load_script(client: Redis, package: str, filename: str) -> AsyncScript:
    """Register a Lua script shipped beside the code; redis-py runs it by SHA (EVALSHA)."""
    source = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return client.register_script(source)


class RedisGuard:
    """Runs Redis calls, turning an outage into ``None`` and a short cool-down."""

    def __init__(
        self, client: Redis, retry_after: float, *, sentinel: Sentinel | None = None
    ) -> None:
        self.client = client
        self._retry_after = retry_after
        self._down_until = 0.0
        self._sentinel = sentinel

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._sentinel is not None:  # its own connections to each sentinel
            await self._sentinel.aclose()

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

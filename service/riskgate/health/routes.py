"""GET /v1/health, GET /v1/health/ready and GET /metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from riskgate.db import UNAVAILABLE_ERRORS
from riskgate.observability.metrics import render_metrics
from riskgate.runtime import Runtime
from riskgate.wire import Wire

CHECK_TIMEOUT_SECONDS = 2.0
Status = Literal["up", "down"]
Overall = Literal["ready", "degraded", "unready"]
_DOWN: tuple[type[Exception], ...] = (TimeoutError, *UNAVAILABLE_ERRORS)
logger = logging.getLogger(__name__)


class Liveness(Wire):
    status: Literal["ok"]


class Readiness(Wire, omit_defaults=True):
    status: Overall
    """``degraded``: Redis is down; the service still serves, more slowly and PostgreSQL-only."""
    postgres: Status
    redis: Status
    failed: str | None = None
    """A background task of the process that died (the process is shutting down)."""


@get("/v1/health", opt={"public": True}, tags=["health"], summary="Liveness")
async def liveness() -> Liveness:
    return Liveness(status="ok")


async def probe(name: str, check: Callable[[], Awaitable[object]]) -> bool:
    """Whether ``check`` succeeds within the bound. Readiness answers 200 or 503, never 500: any
    failure of a check means "not ready" (an unexpected one is logged with its traceback)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await check() is not False
    except _DOWN:
        return False
    except Exception:
        logger.exception("readiness check failed unexpectedly", extra={"check": name})
        return False


async def _postgres_up(runtime: Runtime) -> bool:
    return await probe("postgres", lambda: runtime.pool.fetchval("SELECT 1"))


async def _redis_up(runtime: Runtime) -> bool:
    return await probe("redis", runtime.redis.ping)


@get(
    "/v1/health/ready",
    opt={"public": True},
    tags=["health"],
    summary="Readiness",
    description=(
        "503 when PostgreSQL is unreachable. Redis down is reported but keeps the pod ready: "
        "Redis only speeds things up, and taking every pod out of service because of it would "
        "turn a slowdown into an outage."
    ),
    responses={503: ResponseSpec(Readiness, description="PostgreSQL is unreachable")},
)
async def readiness(runtime: NamedDependency[Runtime]) -> Response[Readiness]:
    postgres, redis = await asyncio.gather(_postgres_up(runtime), _redis_up(runtime))
    ready = postgres and runtime.dead_loop is None
    status: Overall = "unready" if not ready else "ready" if redis else "degraded"
    body = Readiness(
        status=status,
        postgres="up" if postgres else "down",
        redis="up" if redis else "down",
        failed=runtime.dead_loop,
    )
    return Response(body, status_code=200 if ready else 503)


@get("/metrics", opt={"public": True}, include_in_schema=False, media_type="text/plain")
async def metrics() -> Response[bytes]:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)

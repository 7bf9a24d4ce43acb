"""GET /v1/health, GET /v1/health/ready and GET /metrics."""

from __future__ import annotations

import asyncio
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
_POSTGRES_DOWN: tuple[type[BaseException], ...] = (TimeoutError, *UNAVAILABLE_ERRORS)


class Liveness(Wire):
    status: Literal["ok"]


class Readiness(Wire):
    status: Overall
    """``degraded``: Redis is down; the service still serves, more slowly and PostgreSQL-only."""
    postgres: Status
    redis: Status


@get("/v1/health", opt={"public": True}, tags=["health"], summary="Liveness")
async def liveness() -> Liveness:
    return Liveness(status="ok")


async def _postgres_up(runtime: Runtime) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await runtime.pool.fetchval("SELECT 1")
    except _POSTGRES_DOWN:
        return False
    return True


async def _redis_up(runtime: Runtime) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await runtime.redis.ping()
    except TimeoutError:
        return False


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
    status: Overall = "unready" if not postgres else "ready" if redis else "degraded"
    body = Readiness(
        status=status, postgres="up" if postgres else "down", redis="up" if redis else "down"
    )
    return Response(body, status_code=503 if not postgres else 200)


@get("/metrics", opt={"public": True}, include_in_schema=False, media_type="text/plain")
async def metrics() -> Response[bytes]:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)

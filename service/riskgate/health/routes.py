"""GET /v1/health, GET /v1/health/ready and GET /metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx
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
    worker: Status | None = None
    """With ``RISKGATE_WORKER_READY_URL`` (``riskgate dev`` sets it): whether that webhook worker
    answers ready. Down is ``degraded``: scoring goes on, webhooks wait in the outbox. Absent
    otherwise: in Kubernetes the worker is a deployment of its own with its own probe."""


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


async def _worker_up(runtime: Runtime) -> bool | None:
    """Whether the worker at ``RISKGATE_WORKER_READY_URL`` answers ready; None when unset."""
    url = runtime.settings.worker_ready_url
    if not url:
        return None

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS) as client:
                return (await client.get(url)).status_code == 200
        except httpx.TransportError:  # not listening (restarting, or gone): expected, no trace
            return False

    return await probe("worker", ready)


@get(
    "/v1/health/ready",
    opt={"public": True},
    tags=["health"],
    summary="Readiness",
    description=(
        "503 when PostgreSQL is unreachable. Redis down is reported but keeps the pod ready: "
        "Redis only speeds things up, and taking every pod out of service because of it would "
        "turn a slowdown into an outage. With `RISKGATE_WORKER_READY_URL` set (`riskgate dev` "
        "does), `worker` says whether that webhook worker is ready (down: `degraded`)."
    ),
    responses={503: ResponseSpec(Readiness, description="PostgreSQL is unreachable")},
)
async def readiness(runtime: NamedDependency[Runtime]) -> Response[Readiness]:
    postgres, redis, worker = await asyncio.gather(
        _postgres_up(runtime), _redis_up(runtime), _worker_up(runtime)
    )
    ready = postgres and runtime.dead_loop is None
    whole = redis and worker is not False
    status: Overall = "unready" if not ready else "ready" if whole else "degraded"
    body = Readiness(
        status=status,
        postgres=_up_or_down(postgres),
        redis=_up_or_down(redis),
        failed=runtime.dead_loop,
        worker=None if worker is None else _up_or_down(worker),
    )
    return Response(body, status_code=200 if ready else 503)


def _up_or_down(up: bool) -> Status:
    return "up" if up else "down"


@get("/metrics", opt={"public": True}, include_in_schema=False, media_type="text/plain")
async def metrics() -> Response[bytes]:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)

"""Process-wide state of the API: built once in the app's lifespan, torn down with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

from riskgate import db, redis_fastpath
from riskgate.accounts.service import AccountService
from riskgate.auth.credentials import SecretVerifier
from riskgate.auth.service import Authenticator, TokenIssuer
from riskgate.auth.signing import SigningKeys
from riskgate.dblogin import create_app_pool
from riskgate.idempotency import repository as idempotency_repository
from riskgate.idempotency.service import IdempotencyGate
from riskgate.ratelimit.failed_attempts import FailedAttemptLimits
from riskgate.ratelimit.limiter import RateLimiter, RateLimitPolicy
from riskgate.redis_fastpath import RedisGuard
from riskgate.scoring.service import RuleCatalog, ScoringService
from riskgate.settings import Settings
from riskgate.transactions.service import TransactionService
from riskgate.webhooks.config import load_key_ring, private_targets_allowed
from riskgate.webhooks.service import WebhookService

logger = logging.getLogger(__name__)

PURGE_BATCH = 1000


def stop_this_process() -> None:
    """Shut the server down as on SIGTERM: uvicorn finishes the requests in flight, then
    re-raises the signal, so the process ends killed by SIGTERM (status 143), never 0. With
    ``--workers N`` the supervisor starts a fresh worker process instead."""
    signal.raise_signal(signal.SIGTERM)


class Runtime:
    """The process's shared services, handed to routes as the ``runtime`` dependency.

    A plain class, not a dataclass: Litestar's signature model would otherwise try to
    validate it field by field on every request.
    """

    __slots__ = (
        "accounts",
        "authenticator",
        "dead_loop",
        "idempotency",
        "pool",
        "rate_limiter",
        "redis",
        "scoring",
        "settings",
        "signing_keys",
        "tokens",
        "transactions",
        "webhooks",
    )

    def __init__(self, settings: Settings, pool: db.Pool, redis: RedisGuard) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.dead_loop: str | None = None
        """A background task that died: readiness says so until the process is gone."""
        self.signing_keys = load_signing_keys(settings)
        self.authenticator = Authenticator(pool, self.signing_keys, settings.auth_cache_seconds)
        self.tokens = TokenIssuer(
            pool,
            self.signing_keys,
            settings.access_token_ttl_seconds,
            verifier=SecretVerifier(settings.token_hash_threads, settings.token_hash_queue),
            failures=FailedAttemptLimits(
                redis,
                RateLimitPolicy.parse(settings.failed_auth_per_client, name="token-client"),
                RateLimitPolicy.parse(settings.failed_auth_per_address, name="token-address"),
            ),
        )
        self.rate_limiter = RateLimiter(redis)
        self.idempotency = IdempotencyGate(
            redis,
            pool,
            settings.idempotency_lease_seconds,
            settings.idempotency_retry_after_seconds,
        )
        self.scoring = ScoringService(
            pool,
            RuleCatalog(pool, settings.rules_refresh_seconds),
            ttl_seconds=settings.idempotency_ttl_seconds,
            retry_after=settings.idempotency_retry_after_seconds,
        )
        self.accounts = AccountService(
            pool,
            max_amount=Decimal(settings.max_amount),
            ttl_seconds=settings.idempotency_ttl_seconds,
            retry_after=settings.idempotency_retry_after_seconds,
        )
        self.transactions = TransactionService(
            pool,
            fraud_threshold=Decimal(settings.fraud_threshold),
            max_amount=Decimal(settings.max_amount),
            ttl_seconds=settings.idempotency_ttl_seconds,
            retry_after=settings.idempotency_retry_after_seconds,
        )
        self.webhooks = WebhookService(
            pool,
            load_key_ring(settings),
            ttl_seconds=settings.idempotency_ttl_seconds,
            retry_after=settings.idempotency_retry_after_seconds,
            allow_private=private_targets_allowed(settings),
            default_overlap_seconds=settings.webhook_secret_overlap_seconds,
        )


def load_signing_keys(settings: Settings) -> SigningKeys:
    previous = settings.jwt_previous_key_file
    return SigningKeys.from_files(
        Path(settings.jwt_signing_key_file),
        Path(previous) if previous else None,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        variables=("RISKGATE_JWT_SIGNING_KEY_FILE", "RISKGATE_JWT_PREVIOUS_KEY_FILE"),
    )


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, on_loop_death: Callable[[], None] = stop_this_process
) -> AsyncIterator[Runtime]:
    """Pools, clients and background tasks of an API process. A background task that ends
    (none should) is logged with its traceback, marks the process unready and calls
    ``on_loop_death``: by default the server shuts down and the process exits non-zero."""
    pool = await create_app_pool(settings, "riskgate-api")  # refuses a privileged login
    redis = redis_fastpath.open_guard(settings)
    runtime = Runtime(settings, pool, redis)
    purger = asyncio.create_task(
        _purge_expired_keys(pool, settings.idempotency_purge_seconds),
        name="purge-idempotency-keys",
    )
    purger.add_done_callback(lambda task: _died(task, runtime, on_loop_death))
    try:
        yield runtime
    finally:
        purger.cancel()
        # Its death, if it died, was logged when it happened.
        await asyncio.gather(purger, return_exceptions=True)
        runtime.tokens.close()
        await redis.aclose()
        await pool.close()


def _died(task: asyncio.Task[None], runtime: Runtime, on_loop_death: Callable[[], None]) -> None:
    if task.cancelled():  # the lifespan ends
        return
    runtime.dead_loop = task.get_name()
    logger.error(
        "background task died; stopping the process",
        exc_info=task.exception(),
        extra={"loop": runtime.dead_loop},
    )
    on_loop_death()


async def _purge_expired_keys(pool: db.Pool, interval_seconds: float) -> None:
    """Delete expired idempotency records in small batches, forever.

    Every API process runs this; SKIP LOCKED in the query keeps them from contending, and the
    jittered sleep keeps replicas from waking together.
    """
    while True:
        await asyncio.sleep(interval_seconds * random.uniform(0.5, 1.5))
        try:
            while await idempotency_repository.purge_expired(pool, PURGE_BATCH) == PURGE_BATCH:
                pass
        except db.UNAVAILABLE_ERRORS as exc:
            logger.warning("idempotency purge skipped", extra={"error": type(exc).__name__})

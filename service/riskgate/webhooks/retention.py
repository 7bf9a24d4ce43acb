"""Retention of the webhook tables: the worker deletes what is past its time, a batch at a time.

* Succeeded deliveries, with their attempts: ``webhook_delivery_retention_days`` after success.
* Failed and exhausted deliveries, the dead letters: ``webhook_dead_letter_retention_days``
  after they failed. A replay or a recover makes one live again; its clock restarts when it
  next finishes.
* Pending, retrying and held deliveries: never (they are work still to do).
* Outbox rows: ``outbox_retention_days`` after dispatch, and never while a delivery of theirs is
  kept (deliveries read their payload from it); undispatched rows: never.

Each statement deletes at most ``retention_batch_size`` rows and commits on its own. It locks
only the rows it deletes, which no writer touches any more, and skips (``SKIP LOCKED``) any a
writer holds, so the purge neither waits for writers nor makes them wait. It runs in the worker,
never in the request path; every worker replica runs it, and SKIP LOCKED keeps them apart.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from riskgate import db
from riskgate.observability.metrics import PurgedTable, record_purged
from riskgate.settings import Settings
from riskgate.webhooks import repository

logger = logging.getLogger(__name__)

DELIVERED = ("succeeded",)
DEAD_LETTERS = ("failed", "exhausted")
_DAY = 86400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of row is kept, in seconds, and how many go per statement."""

    delivered_seconds: float
    dead_letter_seconds: float
    outbox_seconds: float
    batch_size: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            delivered_seconds=settings.webhook_delivery_retention_days * _DAY,
            dead_letter_seconds=settings.webhook_dead_letter_retention_days * _DAY,
            outbox_seconds=settings.outbox_retention_days * _DAY,
            batch_size=settings.retention_batch_size,
        )


async def purge(pool: db.Pool, policy: RetentionPolicy) -> Counter[PurgedTable]:
    """One retention run: batch after batch until nothing is due; returns rows deleted by table.

    Deliveries go first: their outbox rows become deletable once the last of them is gone.
    """
    purged: Counter[PurgedTable] = Counter()
    await _purge_deliveries(pool, DELIVERED, policy.delivered_seconds, policy, purged)
    await _purge_deliveries(pool, DEAD_LETTERS, policy.dead_letter_seconds, policy, purged)
    await _purge_outbox(pool, policy, purged)
    return purged


async def _purge_deliveries(
    pool: db.Pool,
    statuses: tuple[str, ...],
    age: float,
    policy: RetentionPolicy,
    purged: Counter[PurgedTable],
) -> None:
    while True:
        deliveries, attempts = await repository.purge_deliveries(
            pool, statuses, age, policy.batch_size
        )
        _count(purged, "webhook_deliveries", deliveries)
        _count(purged, "webhook_attempts", attempts)
        if deliveries < policy.batch_size:
            return


async def _purge_outbox(
    pool: db.Pool, policy: RetentionPolicy, purged: Counter[PurgedTable]
) -> None:
    since = _EPOCH
    while True:
        rows, reached = await repository.purge_outbox(
            pool, policy.outbox_seconds, policy.batch_size, since
        )
        _count(purged, "outbox", rows)
        if rows < policy.batch_size or reached is None:
            return
        since = reached  # the next batch starts where this one stopped


def _count(purged: Counter[PurgedTable], table: PurgedTable, rows: int) -> None:
    """Counted per batch, so the metric moves while a long first run works through a backlog."""
    if rows:
        purged[table] += rows
        record_purged(table, rows)


async def purge_loop(pool: db.Pool, settings: Settings, stopping: asyncio.Event) -> None:
    """Run :func:`purge` every ``retention_interval_seconds`` (jittered) until ``stopping``.

    A database outage skips a run: what is due now is still due at the next one.
    """
    policy = RetentionPolicy.from_settings(settings)
    while True:
        delay = settings.retention_interval_seconds * random.uniform(0.5, 1.5)
        try:
            await asyncio.wait_for(stopping.wait(), delay)
            return
        except TimeoutError:
            pass
        try:
            purged = await purge(pool, policy)
        except db.UNAVAILABLE_ERRORS as exc:
            logger.warning("retention purge skipped", extra={"error": type(exc).__name__})
            continue
        if purged:
            logger.info("retention purge", extra={"purged": dict(purged)})

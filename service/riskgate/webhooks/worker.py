"""``riskgate worker``: from outbox rows to signed HTTP deliveries, at least once.

Three loops share one process:

* the dispatcher fans undispatched outbox rows out into deliveries (one statement per batch),
  woken by ``LISTEN riskgate_outbox`` and polling every ``worker_poll_seconds`` as the net;
* the deliverer claims due deliveries with a lease (``FOR UPDATE SKIP LOCKED``), keeps up to
  ``worker_concurrency`` attempts in flight on one shared HTTP client, and hands each result
  to the recorder;
* the recorder writes finished attempts in batches (whatever accumulated during the previous
  write), and the monitor publishes the backlog for metrics and readiness;
* the retention loop deletes finished deliveries and outbox rows past their time
  (:mod:`riskgate.webhooks.retention`).

Every loop is supervised: if one ends (a bug, an error that is not an outage), the traceback
is logged, readiness turns unready naming it, the others stop as on SIGTERM, and ``run()``
raises ``LoopDied`` so the process exits non-zero and its orchestrator restarts it. A worker
missing its recorder would re-send deliveries forever without recording them; one missing its
listener or monitor would degrade unseen.

Killing the process at any moment loses nothing: an undispatched row stays undispatched, a
claimed delivery comes back when its lease (longer than the attempt timeout) runs out. The
price is that a delivery may arrive twice, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import httpx

from riskgate import db
from riskgate.dblogin import create_app_pool
from riskgate.observability.metrics import (
    record_postgres_unavailable,
    record_subscription_disabled,
    record_webhook_attempt,
    record_webhook_backlog,
    record_webhook_lag,
    record_webhook_lost_attempts,
)
from riskgate.settings import Settings
from riskgate.webhooks import repository
from riskgate.webhooks.config import load_key_ring, private_targets_allowed
from riskgate.webhooks.crypto import KeyRing, Sealed, UnsealError
from riskgate.webhooks.delivery import (
    DeliveryConfig,
    Result,
    envelope,
    request_headers,
    send,
    verdict,
)
from riskgate.webhooks.retention import purge_loop
from riskgate.webhooks.retry import parse_schedule
from riskgate.webhooks.schemas import AttemptRecord, Backlog, ClaimedDelivery, message_id
from riskgate.webhooks.transport import delivery_client

logger = logging.getLogger(__name__)
T = TypeVar("T")

OUTBOX_CHANNEL = "riskgate_outbox"
DELIVERIES_CHANNEL = "riskgate_deliveries"
MONITOR_SECONDS = 5.0
RECORD_BATCH = 500


class LoopDied(RuntimeError):
    """A background loop of the worker ended; the process must be restarted."""


def delivery_config(settings: Settings) -> DeliveryConfig:
    return DeliveryConfig(
        signature_header=settings.webhook_signature_header,
        timeout_seconds=settings.webhook_timeout_seconds,
        excerpt_bytes=settings.webhook_response_excerpt_bytes,
        schedule=parse_schedule(settings.webhook_retry_schedule),
        jitter=settings.webhook_retry_jitter,
        retry_after_max=settings.webhook_retry_after_max_seconds,
    )


def open_secrets(keys: KeyRing, job: ClaimedDelivery) -> list[str]:
    return [keys.open(Sealed(s.key_id, s.sealed), job.bound_to).decode() for s in job.secrets]


async def attempt(
    client: httpx.AsyncClient, keys: KeyRing, job: ClaimedDelivery, config: DeliveryConfig
) -> tuple[Result, AttemptRecord]:
    """Make one attempt of a claimed delivery: the plain function the worker wraps."""
    started_at = datetime.now(UTC)
    try:
        secrets = open_secrets(keys, job)
    except (UnsealError, ValueError) as exc:
        logger.error(
            "cannot open signing secret", extra={"delivery": message_id(job.id), "error": str(exc)}
        )
        result = Result("temporary", 0.0, error_class="secret_unavailable")
    else:
        body = envelope(job.event_type, job.event_created_at, job.payload)
        headers = request_headers(
            message_id(job.id),
            secrets,
            body,
            int(time.time()),
            config.signature_header,
            job.traceparent,
        )
        result = await send(client, job.url, body, headers, config)
    decided = verdict(result, job.cycle_attempts, config)
    record = AttemptRecord(
        delivery_id=job.id,
        lock_token=job.lock_token,
        attempt=job.attempt,
        outcome=decided.outcome,
        retry_in=decided.retry_in,
        started_at=started_at,
        duration_ms=int(result.duration * 1000),
        status_code=result.status_code,
        error_class=result.error_class,
        response_body=result.excerpt,
    )
    return result, record


class Worker:
    """One worker process's delivery machinery; ``run()`` until ``stop()``."""

    def __init__(self, settings: Settings, *, keys: KeyRing | None = None) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else load_key_ring(settings)
        self.config = delivery_config(settings)
        self.backlog: Backlog | None = None
        self.backlog_checked_at = 0.0
        self._stopping = asyncio.Event()
        self._outbox_wake = asyncio.Event()
        self._delivery_wake = asyncio.Event()
        self._records: asyncio.Queue[AttemptRecord] = asyncio.Queue()
        self._inflight: set[asyncio.Task[None]] = set()
        self._pool: db.Pool | None = None
        self._client: httpx.AsyncClient | None = None
        self.started = asyncio.Event()
        self.failed: str | None = None
        """The loop that died, if one did: the worker is stopping and unready."""
        self._claim_at_least = max(
            1, min(settings.worker_batch_size, settings.worker_concurrency // 4)
        )

    def stop(self) -> None:
        self._stopping.set()

    @property
    def pool(self) -> db.Pool:
        assert self._pool is not None, "the worker is not running"
        return self._pool

    async def run(self) -> None:
        s = self.settings
        self._pool = await create_app_pool(  # refuses a privileged login
            s, "riskgate-worker", min_size=2, max_size=max(4, s.db_pool_max_size)
        )
        self._client = delivery_client(
            allow_private=private_targets_allowed(s),
            max_connections=s.worker_concurrency,
            timeout=s.webhook_timeout_seconds,
        )
        background = [
            asyncio.create_task(self._listen(), name="webhook-listen"),
            asyncio.create_task(self._dispatch_loop(), name="webhook-dispatch"),
            asyncio.create_task(self._monitor_loop(), name="webhook-monitor"),
            asyncio.create_task(purge_loop(self.pool, s, self._stopping), name="webhook-retention"),
        ]
        recorder = asyncio.create_task(self._record_loop(), name="webhook-record")
        deliverer = asyncio.create_task(self._deliver_loop(), name="webhook-deliver")
        self.started.set()
        try:
            await self._supervise([*background, recorder, deliverer])
        finally:
            await self._shutdown(background, recorder, deliverer)
        if self.failed is not None:
            raise LoopDied(f"the {self.failed} loop died; see the error logged above")

    async def _supervise(self, loops: list[asyncio.Task[None]]) -> None:
        """Until ``stop()``, or until a loop ends: none is meant to while the worker runs."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*loops, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        died = next((task for task in loops if task in done), None)
        if died is not None and not self._stopping.is_set():
            self.failed = died.get_name()
            error = None if died.cancelled() else died.exception()
            logger.error(
                "webhook worker loop died; stopping the worker",
                exc_info=error,
                extra={"loop": self.failed},
            )
            self.stop()

    async def _shutdown(
        self,
        background: list[asyncio.Task[None]],
        recorder: asyncio.Task[None],
        deliverer: asyncio.Task[None],
    ) -> None:
        # The deliverer sees the stop at its next turn; an attempt is bounded by the timeout.
        await asyncio.wait([deliverer], timeout=self.settings.webhook_timeout_seconds + 1)
        deliverer.cancel()
        for task in background:
            task.cancel()
        if self._inflight:
            # An attempt is bounded by the timeout; its result is worth recording.
            await asyncio.wait(self._inflight, timeout=self.settings.webhook_timeout_seconds + 1)
        if not recorder.done():
            with contextlib.suppress(TimeoutError):
                # Bounded: with the database gone, the leases bring the deliveries back anyway.
                await asyncio.wait_for(self._records.join(), self.settings.worker_lease_seconds)
        recorder.cancel()
        await asyncio.gather(*background, recorder, deliverer, return_exceptions=True)
        assert self._client is not None
        await self._client.aclose()
        await self.pool.close()

    # --- waking ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Keep a LISTEN connection; when it breaks, reconnect (polling covers the gap)."""
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self.settings.database_url,
                    server_settings={"application_name": "riskgate-worker-listen"},
                )
            except db.UNAVAILABLE_ERRORS:
                await asyncio.sleep(self.settings.worker_poll_seconds)
                continue
            try:
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(OUTBOX_CHANNEL, self._on_outbox)
                await conn.add_listener(DELIVERIES_CHANNEL, self._on_deliveries)
                await lost.wait()
            except db.UNAVAILABLE_ERRORS:
                pass
            finally:
                with contextlib.suppress(*db.UNAVAILABLE_ERRORS):
                    await asyncio.shield(conn.close(timeout=1))
            # Rows may have arrived while no one listened.
            self._outbox_wake.set()
            self._delivery_wake.set()

    def _on_outbox(self, *_: Any) -> None:
        self._outbox_wake.set()

    def _on_deliveries(self, *_: Any) -> None:
        self._delivery_wake.set()

    async def _sleep(self, wake: asyncio.Event, seconds: float) -> None:
        """Until ``wake`` is set, the worker stops, or ``seconds`` pass."""
        waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(self._stopping.wait())}
        _, pending = await asyncio.wait(
            waiters, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()

    async def _try(self, what: str, work: Awaitable[T]) -> T | None:
        """Run a loop step; a database outage is logged and waited out (None), not fatal."""
        try:
            return await work
        except db.UNAVAILABLE_ERRORS as exc:
            logger.warning(f"{what}: database unavailable", extra={"error": type(exc).__name__})
            record_postgres_unavailable("webhook_worker")
            await self._sleep(self._stopping, self.settings.worker_poll_seconds)
            return None

    # --- dispatcher -----------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        batch = self.settings.worker_batch_size
        first_delay = self.config.schedule[0]
        while not self._stopping.is_set():
            self._outbox_wake.clear()
            done = await self._try(
                "dispatch", repository.dispatch_outbox(self.pool, batch, first_delay)
            )
            if done is not None and done[1]:
                self._delivery_wake.set()
            if done is None or done[0] < batch:  # else: more rows are waiting, go on at once
                await self._sleep(self._outbox_wake, self.settings.worker_poll_seconds)

    # --- deliverer ------------------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        s = self.settings
        while not self._stopping.is_set():
            free = s.worker_concurrency - len(self._inflight)
            if self._inflight and free < self._claim_at_least:
                # Claim in batches, not one row per finished attempt: every claim is a commit.
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            self._delivery_wake.clear()
            wanted = min(free, s.worker_batch_size)
            claimed = await self._try(
                "claim",
                repository.claim_deliveries(
                    self.pool, wanted, s.worker_lease_seconds, uuid.uuid4()
                ),
            )
            if claimed is None:
                continue
            if lost := sum(job.reclaimed for job in claimed):
                record_webhook_lost_attempts(lost)
            await self._start(claimed)
            if len(claimed) < wanted:
                await self._sleep(self._delivery_wake, await self._idle_seconds())

    async def _idle_seconds(self) -> float:
        try:
            due_in = await repository.next_due_in(self.pool)
        except db.UNAVAILABLE_ERRORS:
            return self.settings.worker_poll_seconds
        if due_in is None:
            return self.settings.worker_poll_seconds
        return min(max(due_in, 0.0), self.settings.worker_poll_seconds)

    async def _start(self, claimed: list[ClaimedDelivery]) -> None:
        parked: dict[tuple[str, str | None], list[ClaimedDelivery]] = {}
        for job in claimed:
            state = self._not_deliverable(job)
            if state is not None:
                parked.setdefault(state, []).append(job)
                continue
            task = asyncio.create_task(self._deliver(job))
            self._inflight.add(task)
            task.add_done_callback(self._delivered)
        for (status, error_class), jobs in parked.items():
            for token in {j.lock_token for j in jobs}:
                ids = [j.id for j in jobs if j.lock_token == token]
                await repository.park_deliveries(self.pool, ids, status, error_class, token)

    @staticmethod
    def _not_deliverable(job: ClaimedDelivery) -> tuple[str, str | None] | None:
        """Where a claimed delivery goes instead of the network: paused or disabled targets
        (tests are sent whatever the subscription's state)."""
        if job.event_type == "webhook.test" or job.subscription_id is None:
            return None
        if job.subscription_status != "active":
            return ("failed", "subscription_disabled")
        if job.paused:
            return ("held", None)
        return None

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its attempt is recorded (or its lease runs out); only the bookkeeping after it
            # failed. Logged now, not as "exception never retrieved" whenever it is collected.
            logger.error("delivery bookkeeping failed", exc_info=task.exception())

    async def _deliver(self, job: ClaimedDelivery) -> None:
        assert self._client is not None
        try:
            result, record = await attempt(self._client, self.keys, job, self.config)
        except Exception:
            logger.exception("delivery attempt crashed", extra={"delivery": message_id(job.id)})
            return  # the lease runs out and the delivery is tried again
        record_webhook_attempt(
            record.outcome, result.duration, error_class=result.error_class, retry=job.attempt > 1
        )
        if record.outcome == "succeeded":
            record_webhook_lag((datetime.now(UTC) - job.event_created_at).total_seconds())
        self._records.put_nowait(record)
        if job.subscription_id is not None and job.event_type != "webhook.test":
            await self._update_health(job, result)

    async def _update_health(self, job: ClaimedDelivery, result: Result) -> None:
        """Subscription bookkeeping, only on a change: the row is not written per delivery."""
        assert job.subscription_id is not None
        sub = job.subscription_id
        try:
            if result.kind == "success":
                if job.failing_since is not None:
                    await repository.subscription_recovered(self.pool, sub)
            elif result.kind == "gone":
                if await repository.subscription_gone(self.pool, sub):
                    self._disabled(sub, "gone")
                    await repository.apply_queue_state(self.pool, sub)
            elif job.failing_since is None or self._failing_too_long(job.failing_since):
                limit = self.settings.subscription_failure_disable_days * 86400
                status = await repository.subscription_failed(
                    self.pool, sub, datetime.now(UTC), limit
                )
                if status == "disabled":
                    self._disabled(sub, "failing")
                    await repository.apply_queue_state(self.pool, sub)
        except db.UNAVAILABLE_ERRORS as exc:
            logger.warning("subscription health not updated", extra={"error": type(exc).__name__})

    def _failing_too_long(self, since: datetime) -> bool:
        limit = self.settings.subscription_failure_disable_days * 86400
        return (datetime.now(UTC) - since).total_seconds() > limit

    @staticmethod
    def _disabled(subscription_id: uuid.UUID, reason: Any) -> None:
        record_subscription_disabled(reason)
        logger.warning(
            "webhook subscription disabled",
            extra={"subscription": str(subscription_id), "reason": reason},
        )

    # --- recorder -------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            batch = [await self._records.get()]
            while len(batch) < RECORD_BATCH and not self._records.empty():
                batch.append(self._records.get_nowait())
            while True:
                try:
                    await repository.finish_attempts(self.pool, batch)
                    break
                except db.UNAVAILABLE_ERRORS as exc:
                    # Keep them: the leases outlast a short outage. If the process dies first,
                    # the deliveries are simply tried again.
                    logger.warning("attempts not recorded yet", extra={"error": type(exc).__name__})
                    await asyncio.sleep(self.settings.worker_poll_seconds)
            for _ in batch:
                self._records.task_done()

    # --- monitor --------------------------------------------------------------------------

    async def _monitor_loop(self) -> None:
        while True:
            try:
                backlog = await repository.backlog(self.pool)
            except db.UNAVAILABLE_ERRORS:
                pass
            else:
                self.backlog, self.backlog_checked_at = backlog, time.monotonic()
                record_webhook_backlog("outbox", backlog.outbox, backlog.outbox_oldest_seconds)
                record_webhook_backlog("deliveries", backlog.due, backlog.due_oldest_seconds)
            await asyncio.sleep(min(MONITOR_SECONDS, self.settings.worker_poll_seconds * 5))

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while every loop runs, the database answers and the oldest due work is younger
        than the bound."""
        if self.failed is not None:
            return False, {"status": "unready", "failed": self.failed}
        stale = time.monotonic() - self.backlog_checked_at > 3 * MONITOR_SECONDS
        backlog = self.backlog
        if backlog is None or stale:
            return False, {"status": "unready", "postgres": "down"}
        oldest = max(backlog.due_oldest_seconds, backlog.outbox_oldest_seconds)
        ready = oldest <= self.settings.backlog_unready_seconds
        return ready, {
            "status": "ready" if ready else "unready",
            "postgres": "up",
            "backlog": backlog.due + backlog.outbox,
            "oldest_pending_seconds": round(oldest, 3),
        }


async def serve(settings: Settings) -> None:
    """Run a worker with its health server until SIGTERM or SIGINT."""
    import signal

    from riskgate.webhooks.health import serve_health

    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    server = await serve_health(settings.host, settings.worker_port, worker.readiness)
    logger.info(
        "webhook worker started",
        extra={
            "health": f"http://{settings.host}:{settings.worker_port}/v1/health/ready",
            "concurrency": settings.worker_concurrency,
        },
    )
    try:
        await worker.run()
    finally:
        server.close()
        await server.wait_closed()
        logger.info("webhook worker stopped")

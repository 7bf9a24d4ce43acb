"""Prometheus metrics: every metric riskgate exports is defined in this module.

Rules for adding a metric (other domains append their own section below):

* Name it ``riskgate_<domain>_<what>[_unit]``; counters end in ``_total``.
* Labels are bounded enumerations or route templates, never raw client input (no ids, no paths,
  no free text). Type the label values as a ``Literal`` and record through a small helper, so the
  type checker keeps them bounded.
* Gauges must pass ``multiprocess_mode`` (``"livesum"``, ``"livemax"``, ``"max"``...): several
  uvicorn workers write the same gauge and the default (``"all"``) exports one series per pid.

Multi-process mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set, every process writes its values to
mmap files in that directory and :func:`render_metrics` aggregates all of them. The variable must be
set before ``prometheus_client`` is first imported (prometheus_client picks its value store at
import time), and the directory should be emptied when the server starts, not when a worker does.
"""

from __future__ import annotations

import os
from typing import Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from riskgate import __version__

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# No ``*_created`` series: they double the scrape size, and multi-process mode never has them, so
# single- and multi-worker servers export the same series.
disable_created_metrics()  # type: ignore[no-untyped-call]

__all__ = [
    "DECISIONS",
    "FRAUD_ALERTS",
    "HTTP_DURATION",
    "HTTP_DURATION_BUCKETS",
    "HTTP_REQUESTS",
    "IDEMPOTENCY",
    "LATENCY_SLO_SECONDS",
    "MULTIPROC_DIR_ENV",
    "POSTGRES_UNAVAILABLE",
    "RATE_LIMITED",
    "REDIS_FALLBACKS",
    "RETENTION_PURGED",
    "TRANSACTIONS",
    "UNMATCHED_ROUTE",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_BACKLOG",
    "WEBHOOK_BACKLOG_AGE",
    "WEBHOOK_DURATION",
    "WEBHOOK_ERRORS",
    "WEBHOOK_LAG",
    "WEBHOOK_RETRIES",
    "WEBHOOK_SUBSCRIPTIONS_DISABLED",
    "DecisionMode",
    "IdempotencyOutcome",
    "PostgresOperation",
    "PurgedTable",
    "RedisOperation",
    "SubscriptionDisabledReason",
    "TransactionStatus",
    "WebhookErrorClass",
    "WebhookOutcome",
    "WebhookQueue",
    "multiprocess_enabled",
    "observe_http_request",
    "record_decision",
    "record_idempotency",
    "record_postgres_unavailable",
    "record_purged",
    "record_rate_limited",
    "record_redis_fallback",
    "record_subscription_disabled",
    "record_transaction",
    "record_webhook_attempt",
    "record_webhook_backlog",
    "record_webhook_lag",
    "record_webhook_lost_attempts",
    "render_metrics",
]


# =================================================================================================
# Process
# =================================================================================================

BUILD_INFO: Final = Gauge(
    "riskgate_build_info",
    "Always 1; the labels say which riskgate version the process runs.",
    ("version",),
    multiprocess_mode="livemax",
)
BUILD_INFO.labels(__version__).set(1)


# =================================================================================================
# HTTP (recorded by riskgate.observability.middleware for every request)
# =================================================================================================

LATENCY_SLO_SECONDS: Final = 0.45
"""The latency SLO threshold; it must stay a bucket boundary so the SLO can be computed exactly."""

HTTP_DURATION_BUCKETS: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    LATENCY_SLO_SECONDS,
    *(0.5, 1.0, 2.5, 5.0, 10.0),
)

UNMATCHED_ROUTE: Final = "unmatched"
"""Route label of requests no route matched (404, 405): never the raw path."""

HTTP_REQUESTS: Final = Counter(
    "riskgate_http_requests_total",
    "HTTP requests served, by method, route template and status code.",
    ("method", "route", "status"),
)
HTTP_DURATION: Final = Histogram(
    "riskgate_http_request_duration_seconds",
    "Time from the request reaching the app to the end of the response, by route template.",
    ("method", "route"),
    buckets=HTTP_DURATION_BUCKETS,
)

_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_OTHER_METHOD: Final = "OTHER"

# (method, route, status) -> (requests child, duration child). ``labels()`` costs a lock, a tuple
# and a dict lookup, so the children are cached. The key space is bounded: the method is normalised
# first, routes are templates or UNMATCHED_ROUTE, statuses are three-digit codes.
_http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_http_request(method: str, route: str, status: int, duration_seconds: float) -> None:
    """Count one HTTP request and observe its duration.

    ``route`` must be a route template or :data:`UNMATCHED_ROUTE`; ``method`` may be anything the
    client sent (unknown methods are recorded as ``OTHER``).
    """
    if method not in _KNOWN_METHODS:
        method = _OTHER_METHOD
    key = (method, route, status)
    children = _http_children.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_DURATION.labels(method, route),
        )
        _http_children[key] = children
    children[0].inc()
    children[1].observe(duration_seconds)


# =================================================================================================
# Scoring decisions
# =================================================================================================

DecisionMode = Literal["active", "shadow"]

DECISIONS: Final = Counter(
    "riskgate_decisions_total",
    "Risk decisions taken, by action, rule/score version and mode (active or shadow).",
    ("action", "score_version", "mode"),
)


def record_decision(action: str, score_version: str, mode: DecisionMode) -> None:
    """Count one decision. ``action`` and ``score_version`` come from our rule set, never input."""
    DECISIONS.labels(action, score_version, mode).inc()


# =================================================================================================
# Idempotency
# =================================================================================================

IdempotencyOutcome = Literal["new", "replayed", "mismatch", "in_flight", "missing_key"]
_IDEMPOTENCY_OUTCOMES: Final[tuple[IdempotencyOutcome, ...]] = (
    "new",
    "replayed",
    "mismatch",
    "in_flight",
    "missing_key",
)

IDEMPOTENCY: Final = Counter(
    "riskgate_idempotency_requests_total",
    "Requests through the idempotency layer, by outcome.",
    ("outcome",),
)
for _outcome in _IDEMPOTENCY_OUTCOMES:  # export zeros from the start, so rate() sees every series
    IDEMPOTENCY.labels(_outcome)


def record_idempotency(outcome: IdempotencyOutcome) -> None:
    IDEMPOTENCY.labels(outcome).inc()


# =================================================================================================
# Redis degradation
# =================================================================================================

RedisOperation = Literal["idempotency_lock", "idempotency_unlock", "rate_limit", "token_failures"]
"""Extend this Literal (and _REDIS_OPERATIONS) when a new Redis call site can fall back."""
_REDIS_OPERATIONS: Final[tuple[RedisOperation, ...]] = (
    "idempotency_lock",
    "idempotency_unlock",
    "rate_limit",
    "token_failures",
)

REDIS_FALLBACKS: Final = Counter(
    "riskgate_redis_unavailable_total",
    "Times Redis was unavailable (error, timeout or circuit open) and a fallback path was taken.",
    ("operation",),
)
for _operation in _REDIS_OPERATIONS:
    REDIS_FALLBACKS.labels(_operation)


def record_redis_fallback(operation: RedisOperation) -> None:
    REDIS_FALLBACKS.labels(operation).inc()


PostgresOperation = Literal["request", "webhook_worker"]
"""``request``: an API request answered 503; ``webhook_worker``: a worker loop step waited."""
_POSTGRES_OPERATIONS: Final[tuple[PostgresOperation, ...]] = ("request", "webhook_worker")

POSTGRES_UNAVAILABLE: Final = Counter(
    "riskgate_postgres_unavailable_total",
    "Times PostgreSQL was unreachable (connection lost, refused, timed out) when it was needed.",
    ("operation",),
)
for _pg_operation in _POSTGRES_OPERATIONS:
    POSTGRES_UNAVAILABLE.labels(_pg_operation)


def record_postgres_unavailable(operation: PostgresOperation) -> None:
    POSTGRES_UNAVAILABLE.labels(operation).inc()


# =================================================================================================
# Rate limits
# =================================================================================================

RATE_LIMITED: Final = Counter(
    "riskgate_rate_limited_requests_total",
    "Requests denied (429) by a rate-limit policy, by policy name.",
    ("policy",),
)


def record_rate_limited(policy: str) -> None:
    """Count one denied request. ``policy`` is a configured policy name, never client input."""
    RATE_LIMITED.labels(policy).inc()


# =================================================================================================
# Transactions
# =================================================================================================

TransactionStatus = Literal["approved", "declined", "flagged_for_fraud"]
_TRANSACTION_STATUSES: Final[tuple[TransactionStatus, ...]] = (
    "approved",
    "declined",
    "flagged_for_fraud",
)

TRANSACTIONS: Final = Counter(
    "riskgate_transactions_total",
    "Money transactions processed, by resulting status.",
    ("status",),
)
for _status in _TRANSACTION_STATUSES:
    TRANSACTIONS.labels(_status)

# The exact name the fraud team's alerts and dashboards use: no riskgate_ prefix, by contract.
FRAUD_ALERTS: Final = Counter(
    "fraud_alerts",
    "Transactions flagged for fraud (amount above the fraud threshold).",
)


def record_transaction(status: TransactionStatus) -> None:
    TRANSACTIONS.labels(status).inc()
    if status == "flagged_for_fraud":
        FRAUD_ALERTS.inc()


# =================================================================================================
# Webhooks
# =================================================================================================

WebhookOutcome = Literal["succeeded", "retrying", "failed", "exhausted", "worker_lost"]
"""What one attempt ended as: delivered, to be retried, failed for good, out of retries, or
lost with a worker that died mid-attempt (counted by the worker that reclaimed it)."""
_WEBHOOK_OUTCOMES: Final[tuple[WebhookOutcome, ...]] = (
    "succeeded",
    "retrying",
    "failed",
    "exhausted",
    "worker_lost",
)
WebhookErrorClass = Literal[
    "timeout",
    "connect",
    "dns",
    "tls",
    "protocol",
    "http_3xx",
    "http_408",
    "http_410",
    "http_429",
    "http_4xx",
    "http_5xx",
    "ssrf_blocked",
    "invalid_url",
    "secret_unavailable",
    "subscription_disabled",
]
WebhookQueue = Literal["outbox", "deliveries"]
SubscriptionDisabledReason = Literal["gone", "failing"]
_DISABLED_REASONS: Final[tuple[SubscriptionDisabledReason, ...]] = ("gone", "failing")

WEBHOOK_DURATION_BUCKETS: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 15.0),
)
WEBHOOK_LAG_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

WEBHOOK_ATTEMPTS: Final = Counter(
    "riskgate_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (succeeded, retrying, failed, exhausted, worker_lost).",
    ("outcome",),
)
WEBHOOK_ERRORS: Final = Counter(
    "riskgate_webhook_delivery_errors_total",
    "Failed webhook delivery attempts, by error class.",
    ("error_class",),
)
WEBHOOK_DURATION: Final = Histogram(
    "riskgate_webhook_delivery_duration_seconds",
    "Time of one delivery attempt, from connecting to the response, by outcome.",
    ("outcome",),
    buckets=WEBHOOK_DURATION_BUCKETS,
)
WEBHOOK_RETRIES: Final = Counter(
    "riskgate_webhook_retries_total",
    "Delivery attempts that were retries (the second attempt of a delivery or later).",
)
WEBHOOK_LAG: Final = Histogram(
    "riskgate_webhook_delivery_lag_seconds",
    "From the outbox row's commit to the receiver acknowledging the delivery (successes only).",
    buckets=WEBHOOK_LAG_BUCKETS,
)
WEBHOOK_BACKLOG: Final = Gauge(
    "riskgate_webhook_backlog",
    "Undispatched outbox rows and due, unclaimed deliveries.",
    ("queue",),
    multiprocess_mode="max",
)
WEBHOOK_BACKLOG_AGE: Final = Gauge(
    "riskgate_webhook_backlog_oldest_age_seconds",
    "How long the oldest undispatched outbox row, or due delivery, has waited.",
    ("queue",),
    multiprocess_mode="max",
)
WEBHOOK_SUBSCRIPTIONS_DISABLED: Final = Counter(
    "riskgate_webhook_subscriptions_disabled_total",
    "Subscriptions the worker disabled: the receiver answered 410 (gone) or kept failing.",
    ("reason",),
)
for _reason in _DISABLED_REASONS:
    WEBHOOK_SUBSCRIPTIONS_DISABLED.labels(_reason)
for _webhook_outcome in _WEBHOOK_OUTCOMES:
    WEBHOOK_ATTEMPTS.labels(_webhook_outcome)
    WEBHOOK_DURATION.labels(_webhook_outcome)
_webhook_children: dict[WebhookOutcome, tuple[Counter, Histogram]] = {
    o: (WEBHOOK_ATTEMPTS.labels(o), WEBHOOK_DURATION.labels(o)) for o in _WEBHOOK_OUTCOMES
}


def record_webhook_attempt(
    outcome: WebhookOutcome,
    duration_seconds: float,
    *,
    error_class: WebhookErrorClass | None,
    retry: bool,
) -> None:
    """Count one delivery attempt and observe its duration."""
    counter, histogram = _webhook_children[outcome]
    counter.inc()
    histogram.observe(duration_seconds)
    if error_class is not None:
        WEBHOOK_ERRORS.labels(error_class).inc()
    if retry:
        WEBHOOK_RETRIES.inc()


def record_webhook_lost_attempts(count: int) -> None:
    """Attempts lost with their worker: their duration is unknown, so only the count."""
    WEBHOOK_ATTEMPTS.labels("worker_lost").inc(count)


def record_webhook_lag(seconds: float) -> None:
    WEBHOOK_LAG.observe(max(0.0, seconds))


def record_webhook_backlog(queue: WebhookQueue, size: int, oldest_age_seconds: float) -> None:
    WEBHOOK_BACKLOG.labels(queue).set(size)
    WEBHOOK_BACKLOG_AGE.labels(queue).set(oldest_age_seconds)


def record_subscription_disabled(reason: SubscriptionDisabledReason) -> None:
    WEBHOOK_SUBSCRIPTIONS_DISABLED.labels(reason).inc()


# =================================================================================================
# Retention (the webhook worker's purge)
# =================================================================================================

PurgedTable = Literal["outbox", "webhook_deliveries", "webhook_attempts"]
_PURGED_TABLES: Final[tuple[PurgedTable, ...]] = (
    "outbox",
    "webhook_deliveries",
    "webhook_attempts",
)

RETENTION_PURGED: Final = Counter(
    "riskgate_retention_purged_rows_total",
    "Rows deleted by retention (past their retention period), by table.",
    ("table",),
)
for _table in _PURGED_TABLES:
    RETENTION_PURGED.labels(_table)


def record_purged(table: PurgedTable, rows: int) -> None:
    RETENTION_PURGED.labels(table).inc(rows)


# =================================================================================================
# Exposition
# =================================================================================================


def multiprocess_enabled() -> bool:
    """True when metrics are shared between the worker processes of this server."""
    return bool(os.environ.get(MULTIPROC_DIR_ENV))


def render_metrics() -> tuple[bytes, str]:
    """Return ``(body, content_type)`` for a ``GET /metrics`` response.

    In multi-process mode the body aggregates the files of every worker of this server, so any
    worker can answer the scrape; otherwise it is this process's default registry.
    """
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

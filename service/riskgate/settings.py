"""Every tunable of the service, read once from ``RISKGATE_*`` environment variables.

Each field's env var is ``RISKGATE_`` + the upper-cased field name, e.g. ``RISKGATE_DATABASE_URL``.
Values are validated and converted on load; a bad value stops the process with a message that
names the variable, instead of failing later in the middle of a request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, ClassVar, Literal, Self

import msgspec
from msgspec import Meta

ENV_PREFIX = "RISKGATE_"

PositiveInt = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class _FromEnv(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    _required: ClassVar[dict[str, str]] = {}
    """Fields that have an empty default yet must be set, with why (checked with the others,
    so one run reports every missing variable)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """Build settings from ``RISKGATE_*`` variables, with keyword overrides winning.

        Every missing or malformed variable is reported in one :class:`SettingsError`, so a
        deployment is fixed in one round rather than one variable per restart.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {
            name[len(ENV_PREFIX) :].lower(): value
            for name, value in env.items()
            if name.startswith(ENV_PREFIX)
            and name[len(ENV_PREFIX) :].lower() in cls.__struct_fields__
        }
        raw.update({k: v for k, v in overrides.items() if v is not None})
        problems = cls._field_problems(raw)
        if not problems:
            try:
                return msgspec.convert(raw, cls, strict=False)
            except msgspec.ValidationError as exc:
                problems = [_explain(str(exc))]
        raise SettingsError(_summary(problems))

    @classmethod
    def _field_problems(cls, raw: Mapping[str, object]) -> list[str]:
        """Each field on its own: missing, required-but-empty, or not of its type."""
        problems = []
        for field in msgspec.structs.fields(cls):
            variable = f"{ENV_PREFIX}{field.name.upper()}"
            if field.name not in raw or raw[field.name] == "":
                if field.required:
                    problems.append(f"{variable} is required")
                elif field.name in cls._required:
                    problems.append(f"{variable} is required: {cls._required[field.name]}")
                continue
            try:
                msgspec.convert(raw[field.name], field.type, strict=False)
            except msgspec.ValidationError as exc:
                problems.append(f"{variable}: {exc}")
        return problems

    def __post_init__(self) -> None:
        for name, why in self._required.items():
            if not getattr(self, name):
                raise ValueError(f"{ENV_PREFIX}{name.upper()} is required: {why}")


def _summary(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} settings need fixing:\n" + "\n".join(f"  {p}" for p in problems)


class DatabaseSettings(_FromEnv, frozen=True, kw_only=True):
    """What every process that logs in as the app needs (the admin commands need only this;
    ``riskgate migrate`` reads :class:`MigrationSettings` instead)."""

    database_url: str
    """PostgreSQL DSN the API, the worker and the admin commands log in with, e.g.
    ``postgresql://riskgate_api@db:5432/riskgate``: a login that is only a member of ``db_role``
    (the API and the worker refuse a superuser or schema-owner login at start-up)."""
    db_pool_min_size: Annotated[int, Meta(ge=0)] = 2
    db_pool_max_size: PositiveInt = 10
    db_lock_timeout_ms: PositiveInt = 5000
    """How long a statement may wait for a row lock; past it the request gets a retryable 503."""
    db_statement_timeout_ms: PositiveInt = 15000
    db_role: str = "riskgate_app"
    """Role every app session switches to (``SET ROLE``); it may insert into but never rewrite
    the audit log. The migrations grant it its privileges; switching works whether or not the
    login inherits them (``NOINHERIT``). Empty disables the switch."""


class MigrationSettings(_FromEnv, frozen=True, kw_only=True):
    """What ``riskgate migrate`` reads: the schema owner's URL, and nothing else."""

    # Never fall back to RISKGATE_DATABASE_URL: that is the app's login, which must not be
    # able to create or alter anything.
    _required: ClassVar[dict[str, str]] = {
        "migration_database_url": "migrations run as the schema owner, never as the app's "
        "login (RISKGATE_DATABASE_URL)"
    }

    migration_database_url: str = ""
    """PostgreSQL DSN of the schema owner, e.g. ``postgresql://riskgate_owner@db:5432/riskgate``:
    the role that creates and alters the tables. Only ``riskgate migrate`` uses it."""


class Settings(DatabaseSettings, frozen=True, kw_only=True):
    """Everything the API and the worker read."""

    _required: ClassVar[dict[str, str]] = {"jwt_signing_key_file": "the key that signs tokens"}

    redis_url: str
    """Redis URL, e.g. ``redis://redis:6379/0``. Redis holds locks and counters, never data."""

    # --- process
    mode: Literal["production", "dev"] = "production"
    """``dev`` relaxes guards that only make sense on a laptop (e.g. loopback webhook targets)."""
    db_allow_privileged_login: bool = False
    """Start the API and the worker even though ``database_url`` logs in as a role that can
    become a superuser or the schema owner. Dev mode only; otherwise they refuse to start."""
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    workers: PositiveInt = 1
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- redis
    redis_timeout_seconds: PositiveFloat = 0.25
    """Socket timeout for Redis calls: Redis is a fast path, so it must fail fast."""
    redis_retry_after_seconds: PositiveFloat = 1.0
    """After a Redis failure, skip Redis for this long instead of paying a timeout per request."""
    redis_sentinels: str = ""
    """Comma-separated ``host:port`` of Redis Sentinels (``sentinel-0:26379,sentinel-1:26379``).
    When set, the service asks them for the current master of ``redis_sentinel_master`` and
    follows its failovers; ``redis_url`` then supplies only the password (and username),
    database number and scheme (``rediss://`` for TLS, to the sentinels too) of the data nodes:
    its host and port are ignored."""
    redis_sentinel_master: str = "mymaster"
    """The master name the sentinels monitor (``sentinel monitor <name> ...``)."""
    redis_sentinel_password: str = ""
    """Password of the sentinels themselves (``requirepass`` in sentinel.conf); empty: none.
    Separate from the data nodes' password in ``redis_url``, though often the same."""

    # --- HTTP
    max_body_bytes: PositiveInt = 16 * 1024
    """Larger request bodies get 413 before they are parsed."""

    # --- authentication
    jwt_signing_key_file: str = ""
    """PEM file of the Ed25519 private key that signs access tokens (required)."""
    jwt_previous_key_file: str = ""
    """PEM of the key used before the last rotation: still verifies, never signs."""
    jwt_issuer: str = "riskgate"
    jwt_audience: str = "riskgate-api"
    access_token_ttl_seconds: PositiveInt = 900
    auth_cache_seconds: Annotated[float, Meta(ge=0)] = 5.0
    """How long a process trusts what it read about a client; disabling takes this long."""
    rate_limit: str = "600/60s"
    """Default per-client policy, ``<requests>/<window>`` (``600/60s``, ``5000/1h``); a client
    can carry its own (``riskgate clients create --rate-limit``)."""
    failed_auth_per_client: str = "10/5m"
    """Failed authentications allowed per ``client_id`` at the token endpoint, as
    ``<attempts>/<window>``; past it, 429 with ``Retry-After`` until the window ends, without
    checking the secret. Successful ones do not count."""
    failed_auth_per_address: str = "30/5m"
    """The same per source address (IPv6 by /64): the peer, or the client a trusted proxy
    names in ``X-Forwarded-For`` (uvicorn's ``FORWARDED_ALLOW_IPS``, default 127.0.0.1)."""
    token_hash_threads: Annotated[int, Meta(ge=1, le=64)] = 2
    """Threads per process that check client secrets (scrypt, tens of ms of CPU each), so the
    event loop never does; it bounds the CPU the token endpoint can take."""
    token_hash_queue: Annotated[int, Meta(ge=0, le=10000)] = 32
    """Secret checks that may wait for a thread; past it the token endpoint answers 503 with
    ``Retry-After`` at once instead of queueing without bound."""

    # --- idempotency
    idempotency_ttl_seconds: PositiveInt = 72 * 3600
    idempotency_lease_seconds: PositiveFloat = 30.0
    """Lifetime of the in-flight lock; a crashed request frees its key after this."""
    idempotency_retry_after_seconds: PositiveInt = 1
    idempotency_purge_seconds: PositiveFloat = 300.0
    """How often (jittered by +-50 %) each API process deletes expired idempotency records."""

    # --- money
    fraud_threshold: str = "10000.00"
    """Debits above this amount, in the account's own currency, are flagged for fraud review
    instead of executed."""
    max_amount: str = "1000000000.00"
    """The largest amount (and opening balance) accepted, in major units of any currency."""

    # --- webhooks
    webhook_encryption_keys: str = ""
    """Key ring sealing webhook signing secrets at rest (AES-256-GCM): comma-separated
    ``<key id>:<base64 of 32 bytes>``; the first key seals, every key opens. Rotate by putting a
    new key first, then ``riskgate keys rotate`` re-seals everything and the old one can go.
    ``riskgate keys generate-encryption-key`` makes one."""
    webhook_encryption_keys_file: str = ""
    """The same key ring read from a file (one entry per line or comma-separated), e.g. a
    mounted Kubernetes Secret; used when ``webhook_encryption_keys`` is empty."""
    webhook_allow_private_targets: bool = False
    """Allow webhook URLs that resolve to loopback, private, link-local or other non-public
    addresses (SSRF guard off). Always on in dev mode (``RISKGATE_MODE=dev``); never in
    production."""
    webhook_signature_header: str = "Riskgate-Signature"
    """Name of the ``t=<unix>,v1=<hex>`` signature header, sent beside the Standard Webhooks
    headers."""
    webhook_retry_schedule: str = "0s,5s,5m,30m,2h,5h,10h,10h"
    """Delay before each attempt (units ms, s, m, h, d); after the last one the delivery is
    ``exhausted``. Jittered by ``webhook_retry_jitter``."""
    webhook_retry_jitter: Annotated[float, Meta(ge=0, lt=1)] = 0.1
    """Each retry delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    webhook_retry_after_max_seconds: PositiveFloat = 86400.0
    """Cap on a receiver's ``Retry-After`` (on 429 and 503)."""
    webhook_timeout_seconds: PositiveFloat = 15.0
    """Whole-attempt deadline: connect, send, and response headers plus the kept body excerpt."""
    webhook_response_excerpt_bytes: Annotated[int, Meta(ge=0, le=65536)] = 1024
    """How much of each response body is kept with the attempt."""
    webhook_secret_overlap_seconds: Annotated[int, Meta(ge=0, le=7 * 86400)] = 86400
    """Default time both secrets sign after ``rotate-secret``."""
    subscription_failure_disable_days: PositiveFloat = 5.0
    """A subscription whose deliveries keep failing this long, with no success, is disabled."""
    worker_concurrency: Annotated[int, Meta(ge=1, le=4096)] = 128
    """Deliveries in flight at once in one worker process."""
    worker_poll_seconds: PositiveFloat = 1.0
    """Longest sleep between looks for due work when no notification arrives."""
    worker_lease_seconds: PositiveFloat = 60.0
    """How long a claimed delivery belongs to its worker; a killed worker's claims come back
    after it. Must exceed ``webhook_timeout_seconds``, so one attempt never runs twice at once."""
    worker_batch_size: Annotated[int, Meta(ge=1, le=10000)] = 200
    """Outbox rows fanned out, and deliveries claimed, per statement."""
    worker_port: Annotated[int, Meta(ge=0, le=65535)] = 8081
    """Port of the worker's /v1/health, /v1/health/ready and /metrics (bound on ``host``)."""
    worker_ready_url: Annotated[str, Meta(pattern=r"^(https?://[^\s]+)?$")] = ""
    """A webhook worker's readiness URL for the API's own readiness to include (``worker``;
    down makes it ``degraded``). ``riskgate dev`` sets it to the worker it runs beside the API;
    unset, nothing is checked (in Kubernetes the worker has a probe of its own)."""
    backlog_unready_seconds: PositiveFloat = 300.0
    """The worker reports unready while the oldest due delivery or undispatched outbox row has
    waited longer than this."""

    # --- retention (the webhook worker purges; pending, retrying and held deliveries stay)
    webhook_delivery_retention_days: PositiveFloat = 30.0
    """Succeeded deliveries, with their attempts, are deleted this long after they succeeded."""
    webhook_dead_letter_retention_days: PositiveFloat = 90.0
    """Failed and exhausted deliveries (the dead letters), with their attempts, are deleted this
    long after they failed, unless replayed or recovered first. At least
    ``webhook_delivery_retention_days``."""
    outbox_retention_days: PositiveFloat = 7.0
    """Dispatched outbox rows are deleted this long after dispatch, and never while a delivery
    of theirs is kept; undispatched rows are never deleted."""
    retention_interval_seconds: PositiveFloat = 300.0
    """How often each worker runs the purge (jittered by +-50 %, so replicas spread out)."""
    retention_batch_size: Annotated[int, Meta(ge=1, le=10000)] = 500
    """Rows per delete statement: each commits on its own and locks only the rows it deletes."""

    # --- scoring
    rules_refresh_seconds: PositiveFloat = 30.0
    """How often a process re-reads rule versions (activation and shadow changes)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.db_allow_privileged_login and not self.is_dev:
            raise ValueError("RISKGATE_DB_ALLOW_PRIVILEGED_LOGIN is allowed in dev mode only")
        from riskgate.ratelimit.limiter import RateLimitPolicy

        for name in ("rate_limit", "failed_auth_per_client", "failed_auth_per_address"):
            try:
                RateLimitPolicy.parse(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"RISKGATE_{name.upper()}: {exc}") from None
        from riskgate.redis_config import check_redis_settings

        check_redis_settings(self)
        from riskgate.webhooks.config import check_webhook_settings

        check_webhook_settings(self)
        for name in ("fraud_threshold", "max_amount"):
            if not _is_positive_decimal(getattr(self, name)):
                raise ValueError(
                    f"RISKGATE_{name.upper()} must be a positive decimal like 10000.00"
                )

    @property
    def is_dev(self) -> bool:
        return self.mode == "dev"


def _is_positive_decimal(text: str) -> bool:
    try:
        value = Decimal(text)
    except ArithmeticError:
        return False
    return value.is_finite() and value > 0


def _explain(message: str) -> str:
    """Turn msgspec's ``... - at `$.field``` into a message that names the env var."""
    if "`$." in message:
        head, _, path = message.partition(" - at `$.")
        field = path.rstrip("`").split(".")[0].split("[")[0]
        return f"{ENV_PREFIX}{field.upper()}: {head}"
    if "missing required field" in message:
        field = message.split("`")[1]
        return f"{ENV_PREFIX}{field.upper()} is required"
    return message

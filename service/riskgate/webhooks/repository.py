"""All SQL of the webhook domain (queries in ``queries.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from riskgate.db import Connection, Pool, load_queries
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.webhooks.schemas import (
    AttemptRecord,
    Backlog,
    ClaimedDelivery,
    Delivery,
    DeliveryHealth,
    ManagedHealthRow,
    SealedSecret,
    Subscription,
    SubscriptionSpec,
)

_Q = load_queries(__package__ or "riskgate.webhooks")
DB: TypeAlias = "Pool | Connection | PoolConnectionProxy[asyncpg.Record]"
Tx: TypeAlias = "Connection | PoolConnectionProxy[asyncpg.Record]"


def _claim_args(ticket: IdempotencyTicket, stored: StoredResponse, ttl: int) -> tuple[Any, ...]:
    return (
        ticket.client_id,
        ticket.key,
        ticket.fingerprint,
        stored.status,
        stored.headers,
        stored.body,
        ttl,
    )


def _subscription(row: asyncpg.Record) -> tuple[Subscription, bool]:
    """The subscription and whether the reading client owns it."""
    values = dict(row)
    owned = bool(values.pop("owned"))
    values["actions"] = values["actions"] or []
    return msgspec.convert(values, Subscription), owned


# --- subscriptions -------------------------------------------------------------------------


async def create_subscription(
    db: DB,
    ticket: IdempotencyTicket,
    stored: StoredResponse,
    ttl: int,
    subscription_id: UUID,
    spec: SubscriptionSpec,
    secret: SealedSecret,
    actor: str,
    audit: dict[str, Any],
    created_at: datetime,
) -> bool:
    """False when the idempotency key was already taken."""
    won: bool = await db.fetchval(
        _Q["create_subscription"],
        *_claim_args(ticket, stored, ttl),
        subscription_id,
        spec.url,
        spec.event_types,
        spec.actions,
        spec.paused,
        secret.key_id,
        secret.sealed,
        actor,
        audit,
        created_at,
    )
    return won


async def get_subscription(
    db: DB, subscription_id: UUID, client_id: UUID
) -> tuple[Subscription, bool] | None:
    row = await db.fetchrow(_Q["get_subscription"], subscription_id, client_id)
    return None if row is None else _subscription(row)


async def list_subscriptions(
    db: DB, client_id: UUID, before: UUID | None, limit: int
) -> list[Subscription]:
    rows = await db.fetch(_Q["list_subscriptions"], client_id, before, limit)
    return [_subscription(row)[0] for row in rows]


async def update_subscription(
    db: DB,
    subscription_id: UUID,
    owner: UUID,
    changes: dict[str, Any],
    managed_by: str,
    actor: str,
) -> bool:
    """Apply the present fields of ``changes``; False when nothing matched."""
    updated: bool = await db.fetchval(
        _Q["update_subscription"],
        subscription_id,
        owner,
        changes.get("url"),
        changes.get("event_types"),
        "actions" in changes,
        changes.get("actions"),
        changes.get("paused"),
        changes.get("status"),
        managed_by,
        actor,
        {k: v for k, v in changes.items() if k != "url"},
    )
    return updated


async def apply_queue_state(db: DB, subscription_id: UUID) -> int:
    row = await db.fetchrow(_Q["apply_queue_state"], subscription_id)
    assert row is not None
    return int(row["changed"])


async def delete_subscription(
    db: DB, subscription_id: UUID, owner: UUID, managed_by: str, actor: str
) -> bool:
    deleted: bool = await db.fetchval(
        _Q["delete_subscription"], subscription_id, owner, managed_by, actor
    )
    return deleted


async def rotate_secret(
    db: DB,
    ticket: IdempotencyTicket,
    stored: StoredResponse,
    ttl: int,
    subscription_id: UUID,
    secret: SealedSecret,
    previous_expires_at: datetime,
    actor: str,
) -> bool | None:
    """True: rotated; False: the key was taken; None: no such subscription the caller manages."""
    row = await db.fetchrow(
        _Q["rotate_secret"],
        *_claim_args(ticket, stored, ttl),
        subscription_id,
        secret.key_id,
        secret.sealed,
        previous_expires_at,
        actor,
    )
    return None if row is None else bool(row["won"])


async def client_ids_by_name(db: DB, names: Sequence[str]) -> dict[str, UUID]:
    rows = await db.fetch(_Q["client_ids_by_name"], list(names))
    return {row["name"]: row["id"] for row in rows}


async def lock_managed_subscription(conn: Tx, managed_ref: str) -> tuple[UUID, UUID, str] | None:
    """(id, owner, url) of the managed subscription, row-locked for the transaction."""
    row = await conn.fetchrow(_Q["lock_managed_subscription"], managed_ref)
    return None if row is None else (row["id"], row["owner_client_id"], row["url"])


async def upsert_managed_subscription(
    conn: Tx,
    subscription_id: UUID,
    owner: UUID,
    client_ids: list[UUID],
    spec: SubscriptionSpec,
    managed_ref: str,
) -> UUID | None:
    """The subscription's id, or None when another client manages ``managed_ref``."""
    found: UUID | None = await conn.fetchval(
        _Q["upsert_managed_subscription"],
        subscription_id,
        owner,
        client_ids,
        spec.url,
        spec.event_types,
        spec.actions,
        spec.paused,
        managed_ref,
    )
    return found


async def replace_secrets(conn: Tx, subscription_id: UUID, secrets: Sequence[SealedSecret]) -> None:
    await conn.execute(
        _Q["replace_secrets"],
        subscription_id,
        [s.key_id for s in secrets],
        [s.sealed for s in secrets],
        [s.expires_at for s in secrets],
    )


async def audit_sync(
    conn: Tx, client_id: UUID, actor: str, action: str, entity: UUID, details: Any
) -> None:
    await conn.execute(_Q["audit_sync"], client_id, actor, action, entity, details)


async def delete_managed_subscription(db: DB, managed_ref: str, owner: UUID, actor: str) -> bool:
    deleted: bool = await db.fetchval(_Q["delete_managed_subscription"], managed_ref, owner, actor)
    return deleted


async def managed_subscription_owner(db: DB, managed_ref: str) -> UUID | None:
    owner: UUID | None = await db.fetchval(_Q["managed_subscription_owner"], managed_ref)
    return owner


async def managed_subscription_health(db: DB, managed_ref: str) -> ManagedHealthRow | None:
    row = await db.fetchrow(_Q["managed_subscription_health"], managed_ref)
    if row is None:
        return None
    attempts = int(row["recent_attempts"])
    health = DeliveryHealth(
        last_success_at=row["last_success_at"],
        failing_since=row["failing_since"],
        recent_attempts=attempts,
        recent_success_ratio=round(row["recent_succeeded"] / attempts, 4) if attempts else None,
        dead_letters=int(row["dead_letters"]),
    )
    return ManagedHealthRow(row["id"], row["owner_client_id"], health)


async def recover_deliveries(
    db: DB, subscription_id: UUID, client_id: UUID, since: datetime, until: datetime | None
) -> int:
    row = await db.fetchrow(_Q["recover_deliveries"], subscription_id, client_id, since, until)
    assert row is not None
    return int(row["requeued"])


# --- deliveries ----------------------------------------------------------------------------


async def send_test(
    db: DB,
    ticket: IdempotencyTicket,
    stored: StoredResponse,
    ttl: int,
    delivery_id: UUID,
    event_ref: UUID,
    payload: Any,
    traceparent: str | None,
    subscription_id: UUID | None,
    target: tuple[str, SealedSecret] | None,
) -> bool:
    """False when the idempotency key was already taken."""
    url, secret = target if target else (None, None)
    row = await db.fetchrow(
        _Q["send_test"],
        *_claim_args(ticket, stored, ttl),
        delivery_id,
        event_ref,
        payload,
        traceparent,
        subscription_id,
        url,
        secret.key_id if secret else None,
        secret.sealed if secret else None,
    )
    assert row is not None
    return bool(row["won"])


def _delivery(row: asyncpg.Record) -> tuple[Delivery, str | None]:
    values = dict(row)
    subscription_status = values.pop("subscription_status")
    values["id"] = f"msg_{values['id'].hex}"
    return msgspec.convert(values, Delivery), subscription_status


async def get_delivery(
    db: DB, delivery_id: UUID, client_id: UUID
) -> tuple[Delivery, str | None] | None:
    """The delivery and its subscription's status, if the client may see it."""
    row = await db.fetchrow(_Q["get_delivery"], delivery_id, client_id)
    return None if row is None else _delivery(row)


async def list_deliveries(
    db: DB,
    client_id: UUID,
    *,
    subscription_id: UUID | None,
    status: str | None,
    event_type: str | None,
    event_ref: UUID | None,
    before: UUID | None,
    limit: int,
) -> list[Delivery]:
    rows = await db.fetch(
        _Q["list_deliveries"],
        client_id,
        subscription_id,
        status,
        event_type,
        event_ref,
        before,
        limit,
    )
    return [_delivery(row)[0] for row in rows]


async def replay_delivery(db: DB, delivery_id: UUID, client_id: UUID) -> bool:
    row = await db.fetchrow(_Q["replay_delivery"], delivery_id, client_id)
    assert row is not None
    return bool(row["replayed"])


# --- the worker ----------------------------------------------------------------------------


async def dispatch_outbox(db: DB, batch_size: int, first_delay: float) -> tuple[int, int]:
    """(outbox rows dispatched, deliveries created)."""
    row = await db.fetchrow(_Q["dispatch_outbox"], batch_size, first_delay)
    assert row is not None
    return int(row["dispatched"]), int(row["deliveries"])


def _claimed(row: asyncpg.Record, token: UUID) -> ClaimedDelivery:
    if row["target_url"] is not None:
        secrets = [SealedSecret(row["target_key_id"], bytes(row["target_secret"]))]
        bound_to, url = row["id"].bytes, row["target_url"]
    else:
        secrets = [
            SealedSecret(k, bytes(s))
            for k, s in zip(row["secret_key_ids"], row["secret_sealed"], strict=True)
        ]
        bound_to, url = row["subscription_id"].bytes, row["url"]
    return ClaimedDelivery(
        id=row["id"],
        lock_token=token,
        subscription_id=row["subscription_id"],
        event_type=row["event_type"],
        attempt=row["attempt_count"],
        cycle_attempts=row["cycle_attempts"],
        payload=row["payload"].encode(),
        event_created_at=row["event_created_at"],
        traceparent=row["traceparent"],
        url=url,
        subscription_status=row["subscription_status"],
        paused=row["paused"],
        failing_since=row["failing_since"],
        secrets=secrets,
        bound_to=bound_to,
        reclaimed=row["reclaimed"],
    )


async def claim_deliveries(
    db: DB, limit: int, lease_seconds: float, token: UUID
) -> list[ClaimedDelivery]:
    rows = await db.fetch(_Q["claim_deliveries"], limit, lease_seconds, token)
    return [_claimed(row, token) for row in rows]


async def finish_attempts(db: DB, records: Sequence[AttemptRecord]) -> int:
    """Record attempts; returns how many deliveries changed (their lease was still held)."""
    try:
        changed: int = await db.fetchval(
            _Q["finish_attempts"],
            [r.delivery_id for r in records],
            [r.lock_token for r in records],
            [r.attempt for r in records],
            [r.outcome for r in records],
            [r.retry_in for r in records],
            [r.started_at for r in records],
            [r.duration_ms for r in records],
            [r.status_code for r in records],
            [r.error_class for r in records],
            [r.response_body for r in records],
        )
    except asyncpg.ForeignKeyViolationError:
        return 0  # a subscription (and its deliveries) was deleted while we delivered
    return changed


async def park_deliveries(
    db: DB, ids: list[UUID], status: str, error_class: str | None, token: UUID
) -> None:
    await db.execute(_Q["park_deliveries"], ids, status, error_class, token)


async def subscription_failed(
    db: DB, subscription_id: UUID, failed_at: datetime, disable_after_seconds: float
) -> str | None:
    status: str | None = await db.fetchval(
        _Q["subscription_failed"], subscription_id, failed_at, disable_after_seconds
    )
    return status


async def subscription_recovered(db: DB, subscription_id: UUID) -> None:
    await db.execute(_Q["subscription_recovered"], subscription_id)


async def subscription_gone(db: DB, subscription_id: UUID) -> bool:
    return await db.fetchval(_Q["subscription_gone"], subscription_id) is not None


async def next_due_in(db: DB) -> float | None:
    value: float | None = await db.fetchval(_Q["next_due_in"])
    return value


async def backlog(db: DB) -> Backlog:
    row = await db.fetchrow(_Q["backlog"])
    assert row is not None
    return Backlog(
        due=row["due"],
        due_oldest_seconds=max(0.0, row["due_oldest"]),
        outbox=row["outbox"],
        outbox_oldest_seconds=max(0.0, row["outbox_oldest"]),
    )


# --- key rotation --------------------------------------------------------------------------


async def secrets_not_under_key(
    db: DB, key_id: str, limit: int
) -> list[tuple[UUID, bytes, SealedSecret]]:
    """(row id, what it is bound to, sealed secret) of subscription secrets under other keys."""
    rows = await db.fetch(_Q["secrets_not_under_key"], key_id, limit)
    return [
        (r["id"], r["subscription_id"].bytes, SealedSecret(r["key_id"], bytes(r["sealed"])))
        for r in rows
    ]


async def reseal_secret(db: DB, row_id: UUID, old_key: str, new: SealedSecret) -> None:
    await db.execute(_Q["reseal_secret"], row_id, old_key, new.key_id, new.sealed)


async def test_secrets_not_under_key(
    db: DB, key_id: str, limit: int
) -> list[tuple[UUID, bytes, SealedSecret]]:
    rows = await db.fetch(_Q["test_secrets_not_under_key"], key_id, limit)
    return [(r["id"], r["id"].bytes, SealedSecret(r["key_id"], bytes(r["sealed"]))) for r in rows]


async def reseal_test_secret(db: DB, row_id: UUID, old_key: str, new: SealedSecret) -> None:
    await db.execute(_Q["reseal_test_secret"], row_id, old_key, new.key_id, new.sealed)


# --- retention -------------------------------------------------------------------------------


async def purge_deliveries(
    db: DB, statuses: Sequence[str], older_than_seconds: float, limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` deliveries finished in ``statuses`` long enough ago, with their
    attempts; returns (deliveries, attempts) deleted."""
    row = await db.fetchrow(_Q["purge_deliveries"], list(statuses), older_than_seconds, limit)
    assert row is not None
    return row["deliveries"], row["attempts"]


async def purge_outbox(
    db: DB, older_than_seconds: float, limit: int, since: datetime
) -> tuple[int, datetime | None]:
    """Delete up to ``limit`` dispatched, unreferenced outbox rows dispatched at or after
    ``since``; returns how many went and the latest dispatch time among them."""
    row = await db.fetchrow(_Q["purge_outbox"], older_than_seconds, limit, since)
    assert row is not None
    return row["purged"], row["reached"]

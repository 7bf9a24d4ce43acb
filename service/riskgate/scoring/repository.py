"""All SQL of the scoring domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from riskgate.db import Connection, Pool, load_queries
from riskgate.errors import EventAlreadyScored
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.scoring.rules import RuleVersion
from riskgate.scoring.schemas import Decision, DecisionResponse, Signals

Tx: TypeAlias = "Connection | PoolConnectionProxy[asyncpg.Record]"
"""A connection inside the caller's transaction."""

_Q = load_queries(__package__ or "riskgate.scoring")
# Weights are stored as JSON numbers, like the first version the migrations insert.
_WEIGHTS_JSON = msgspec.json.Encoder(decimal_format="number")


async def load_rule_versions(pool: Pool) -> tuple[RuleVersion, list[RuleVersion]]:
    """The active rule version and those running in shadow."""
    rows = await pool.fetch(_Q["load_rule_versions"])
    active, shadows = None, []
    for row in rows:
        rule = _rule_from_row(row)
        if row["status"] == "active":
            active = rule
        else:
            shadows.append(rule)
    if active is None:
        raise RuntimeError("no active rule version: the rule_versions table has none")
    return active, shadows


def _rule_from_row(row: asyncpg.Record) -> RuleVersion:
    # Weights via their text, so a stored 0.1 becomes Decimal("0.1"), not the float's expansion.
    weights = {k: str(v) for k, v in row["weights"].items()}
    fields = {k: row[k] for k in ("version", "review_threshold", "hold_threshold")}
    return msgspec.convert({**fields, "weights": weights}, RuleVersion, strict=False)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """Everything stored for one scored event."""

    response: DecisionResponse
    signals: Signals
    shadow: list[Decision]
    actor: str
    traceparent: str | None


async def record_decision(
    pool: Pool, ticket: IdempotencyTicket, record: DecisionRecord, stored: StoredResponse, ttl: int
) -> bool:
    """Store the decision with its key, outbox and audit rows; False if the key was taken."""
    r = record.response
    try:
        won: bool = await pool.fetchval(
            _Q["record_decision"],
            ticket.client_id,
            ticket.key,
            ticket.fingerprint,
            stored.status,
            stored.headers,
            stored.body,
            ttl,
            r.id,
            r.event_id,
            r.source,
            record.signals,
            Decimal(str(r.score)),
            r.action,
            r.score_version,
            r.reasons,
            r.trace_id,
            r.created_at,
            record.shadow,
            r,
            record.traceparent,
            record.actor,
            _audit_details(r),
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "events_client_event_id_key":
            raise EventAlreadyScored(
                f"event_id {r.event_id!r} was already scored under another Idempotency-Key",
                field="event_id",
            ) from None
        raise
    return won


def _audit_details(r: DecisionResponse) -> dict[str, Any]:
    return {
        "event_id": r.event_id,
        "score": r.score,
        "action": r.action,
        "score_version": r.score_version,
    }


@dataclass(frozen=True, slots=True)
class RuleVersionListing:
    """A stored rule version with its status (``riskgate rules list``)."""

    rule: RuleVersion
    status: str
    created_at: datetime


async def list_rule_versions(pool: Pool) -> list[RuleVersionListing]:
    rows = await pool.fetch(_Q["list_rule_versions"])
    return [
        RuleVersionListing(
            rule=_rule_from_row(row),
            status=row["status"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def create_rule_version(pool: Pool, rule: RuleVersion, actor: str) -> bool:
    """Insert ``rule`` as a shadow version with its audit row; False if the version exists."""
    created: bool = await pool.fetchval(
        _Q["create_rule_version"],
        rule.version,
        _WEIGHTS_JSON.encode(rule.weights),
        rule.review_threshold,
        rule.hold_threshold,
        actor,
    )
    return created


async def lock_rule_statuses(conn: Tx) -> dict[str, str]:
    """version -> status of every version, locked until the transaction ends."""
    return {row["version"]: row["status"] for row in await conn.fetch(_Q["lock_rule_versions"])}


async def set_rule_status(conn: Tx, version: str, status: str, actor: str, action: str) -> None:
    """Change one version's status, audited as ``rule_version.<action>``; no-op if unchanged."""
    await conn.execute(_Q["set_rule_status"], version, status, actor, action)

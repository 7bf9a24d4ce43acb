"""All SQL of the scoring domain."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from riskgate.db import Pool, load_queries
from riskgate.errors import EventAlreadyScored
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.scoring.rules import RuleVersion
from riskgate.scoring.schemas import Decision, DecisionResponse, Signals

_Q = load_queries(__package__ or "riskgate.scoring")


async def load_rule_versions(pool: Pool) -> tuple[RuleVersion, list[RuleVersion]]:
    """The active rule version and those running in shadow."""
    rows = await pool.fetch(_Q["load_rule_versions"])
    active, shadows = None, []
    for row in rows:
        rule = msgspec.convert(
            {**dict(row), "weights": {k: str(v) for k, v in row["weights"].items()}},
            RuleVersion,
            strict=False,
        )
        if row["status"] == "active":
            active = rule
        else:
            shadows.append(rule)
    if active is None:
        raise RuntimeError("no active rule version: the rule_versions table has none")
    return active, shadows


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

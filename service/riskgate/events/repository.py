"""All SQL of the events read side."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import msgspec

from riskgate.db import Pool, load_queries
from riskgate.events.schemas import EventDetail, EventSummary

_Q = load_queries(__package__ or "riskgate.events")


@dataclass(frozen=True, slots=True)
class EventFilter:
    action: str | None = None
    source: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    event_id: str | None = None


async def get_event(pool: Pool, client_id: UUID, event_ref: UUID) -> EventDetail | None:
    row = await pool.fetchrow(_Q["get_event"], event_ref, client_id)
    if row is None:
        return None
    fields = dict(row)
    fields["decision"] = {
        "score": float(fields.pop("score")),
        "action": fields.pop("action"),
        "score_version": fields.pop("score_version"),
        "reasons": fields.pop("reasons"),
    }
    # strict=False: the JSON aggregates carry timestamps and decimals as text/numbers.
    return msgspec.convert(fields, EventDetail, strict=False)


async def list_events(
    pool: Pool, client_id: UUID, where: EventFilter, after: UUID | None, limit: int
) -> list[EventSummary]:
    rows = await pool.fetch(
        _Q["list_events"],
        client_id,
        where.action,
        where.source,
        where.created_after,
        where.created_before,
        where.event_id,
        after,
        limit,
    )
    return [
        msgspec.convert({**dict(row), "score": float(row["score"])}, EventSummary, strict=False)
        for row in rows
    ]

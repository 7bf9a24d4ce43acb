"""Wire contract of GET /v1/events and GET /v1/events/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from riskgate.scoring.schemas import Action, Decision, Signals
from riskgate.wire import Page, Wire


class AuditEntry(Wire):
    chain: int
    """Which of the audit chains holds the entry; ``seq`` is its position in that chain."""
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    details: dict[str, Any]
    hash: str
    """Hex SHA-256 chaining this entry to the previous one (see ``riskgate audit verify``)."""


class EventSummary(Wire):
    id: UUID
    event_id: str
    source: str
    score: float
    action: Action
    score_version: str
    trace_id: str
    created_at: datetime


class EventDetail(Wire):
    id: UUID
    event_id: str
    source: str
    signals: Signals
    decision: Decision
    shadow_decisions: list[Decision]
    audit_trail: list[AuditEntry]
    trace_id: str
    created_at: datetime


class EventPage(Page):
    data: list[EventSummary]

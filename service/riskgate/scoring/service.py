"""Scoring use case: evaluate the rules, then record the decision exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from uuid import UUID

import msgspec
import uuid_utils.compat as uuid7

from riskgate.db import Pool
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.idempotency.service import settle
from riskgate.observability.metrics import record_decision
from riskgate.scoring import repository
from riskgate.scoring.repository import DecisionRecord
from riskgate.scoring.rules import RuleVersion, evaluate
from riskgate.scoring.schemas import DecisionResponse, ScoreRequest


class RuleCatalog:
    """The rule versions in force, re-read from the database every ``refresh_seconds``.

    Activating a version or starting a shadow run is a row change; every process picks it up
    within one refresh period without a restart.
    """

    def __init__(self, pool: Pool, refresh_seconds: float) -> None:
        self._pool = pool
        self._refresh = refresh_seconds
        self._loaded_at = -float("inf")
        self._rules: tuple[RuleVersion, list[RuleVersion]] | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[RuleVersion, list[RuleVersion]]:
        if self._rules is None or time.monotonic() - self._loaded_at >= self._refresh:
            async with self._lock:
                if self._rules is None or time.monotonic() - self._loaded_at >= self._refresh:
                    self._rules = await repository.load_rule_versions(self._pool)
                    self._loaded_at = time.monotonic()
        return self._rules


class ScoringService:
    def __init__(
        self, pool: Pool, rules: RuleCatalog, *, ttl_seconds: int, retry_after: int
    ) -> None:
        self._pool = pool
        self._rules = rules
        self._ttl = ttl_seconds
        self._retry_after = retry_after

    async def score(
        self,
        ticket: IdempotencyTicket,
        request: ScoreRequest,
        *,
        actor: str,
        trace: tuple[str, str | None],
    ) -> tuple[StoredResponse, bool]:
        """Decide and store; returns the response and whether it is a replay."""
        active, shadows = await self._rules.current()
        decision = evaluate(active, request.signals)
        trace_id, traceparent = trace
        response = DecisionResponse(
            id=_new_event_id(),
            event_id=request.event_id,
            source=request.source,
            score=decision.score,
            action=decision.action,
            score_version=decision.score_version,
            reasons=decision.reasons,
            trace_id=trace_id,
            created_at=datetime.now(UTC),
        )
        stored = StoredResponse(
            status=201,
            headers={"Location": f"/v1/events/{response.id}"},
            body=msgspec.json.encode(response),
        )
        record = DecisionRecord(
            response=response,
            signals=request.signals,
            shadow=[evaluate(rule, request.signals) for rule in shadows],
            actor=actor,
            traceparent=traceparent,
        )
        won = await repository.record_decision(self._pool, ticket, record, stored, self._ttl)
        if won:
            _count_decisions(record)
        return await settle(self._pool, ticket, stored, won=won, retry_after=self._retry_after)


def _new_event_id() -> UUID:
    # UUIDv7: time-ordered, so the primary key doubles as the pagination order.
    return uuid7.uuid7()


def _count_decisions(record: DecisionRecord) -> None:
    r = record.response
    record_decision(r.action, r.score_version, "active")
    for shadow in record.shadow:
        record_decision(shadow.action, shadow.score_version, "shadow")

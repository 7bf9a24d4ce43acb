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
from riskgate.scoring.repository import DecisionRecord, RuleVersionListing
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


class RuleVersionExists(Exception):
    pass


class RuleVersionNotFound(Exception):
    pass


class RuleChangeRefused(Exception):
    """The change would leave the scoring without exactly one active version."""


class RuleAdmin:
    """Rule versions from the command line: create (as shadow), activate, retire; each
    change audited. Running processes pick changes up within ``rules_refresh_seconds``."""

    def __init__(self, pool: Pool, actor: str = "operator:cli") -> None:
        self._pool = pool
        self._actor = actor

    async def list(self) -> list[RuleVersionListing]:
        return await repository.list_rule_versions(self._pool)

    async def create(self, rule: RuleVersion) -> None:
        """Store a validated rule (see ``rules.new_rule_version``) as a shadow version."""
        if not await repository.create_rule_version(self._pool, rule, self._actor):
            raise RuleVersionExists(f"rule version {rule.version} exists")

    async def activate(self, version: str) -> str | None:
        """Make ``version`` the active one; the previously active version is retired and
        returned (None if ``version`` already was active)."""
        async with self._pool.acquire() as conn, conn.transaction():
            statuses = await repository.lock_rule_statuses(conn)
            _require(version, statuses)
            previous = next(v for v, status in statuses.items() if status == "active")
            if previous == version:
                return None
            # Retired first: the table allows one active version at any instant.
            await repository.set_rule_status(conn, previous, "retired", self._actor, "retired")
            await repository.set_rule_status(conn, version, "active", self._actor, "activated")
            return previous

    async def retire(self, version: str) -> bool:
        """Stop scoring ``version`` in shadow; False if it was already retired."""
        async with self._pool.acquire() as conn, conn.transaction():
            statuses = await repository.lock_rule_statuses(conn)
            _require(version, statuses)
            if statuses[version] == "active":
                raise RuleChangeRefused(
                    f"{version} is the active version: activate another one instead"
                )
            if statuses[version] == "retired":
                return False
            await repository.set_rule_status(conn, version, "retired", self._actor, "retired")
            return True


def _require(version: str, statuses: dict[str, str]) -> None:
    if version not in statuses:
        raise RuleVersionNotFound(f"no rule version {version}")

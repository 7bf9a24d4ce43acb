"""All SQL of money transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from riskgate.db import Pool, load_queries
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.transactions.schemas import TransactionResponse, transaction_from_row

_Q = load_queries(__package__ or "riskgate.transactions")

Premise = Literal["active_and_covered", "active_not_covered", "not_active"]
"""What the decision assumed about the account; re-checked under the row lock."""


@dataclass(frozen=True, slots=True)
class AccountState:
    currency: str
    balance_minor: int
    active: bool


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One transaction to store, with everything written beside it."""

    id: UUID
    account_id: int
    amount_minor: int
    currency: str
    status: str
    reason: str | None
    premise: Premise
    trace_id: str
    created_at: datetime
    event_type: str
    payload: TransactionResponse
    traceparent: str | None
    actor: str


async def account_for_debit(pool: Pool, account_id: int, client_id: UUID) -> AccountState | None:
    row = await pool.fetchrow(_Q["account_for_debit"], account_id, client_id)
    if row is None:
        return None
    return AccountState(row["currency"], row["balance_minor"], row["status"] == "active")


async def record_transaction(
    pool: Pool,
    ticket: IdempotencyTicket,
    record: TransactionRecord,
    stored: StoredResponse,
    ttl: int,
) -> tuple[bool, bool]:
    """(premise held, key won). Writes nothing unless both are true."""
    row: asyncpg.Record | None = await pool.fetchrow(
        _Q["record_transaction"],
        ticket.client_id, ticket.key, ticket.fingerprint, stored.status, stored.headers,
        stored.body, ttl,
        record.account_id, record.id, record.amount_minor, record.currency, record.status,
        record.reason, record.premise, record.trace_id, record.created_at,
        record.event_type, record.payload, record.traceparent, record.actor,
    )  # fmt: skip
    assert row is not None
    return bool(row["premise_held"]), bool(row["won"])


async def get_transaction(
    pool: Pool, transaction_id: UUID, client_id: UUID
) -> TransactionResponse | None:
    row = await pool.fetchrow(_Q["get_transaction"], transaction_id, client_id)
    return None if row is None else transaction_from_row(row)

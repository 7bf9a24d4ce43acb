"""All SQL of accounts and their statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from riskgate.accounts.schemas import AccountResponse, AccountStatus
from riskgate.db import Pool, load_queries
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.money import format_minor
from riskgate.transactions.schemas import TransactionResponse, transaction_from_row

_Q = load_queries(__package__ or "riskgate.accounts")


@dataclass(frozen=True, slots=True)
class NewAccount:
    id: int
    customer_ref: str
    currency: str
    opening_balance_minor: int
    created_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class AccountHead:
    id: int
    customer_ref: str
    currency: str
    balance_minor: int
    status: AccountStatus


async def next_account_id(pool: Pool) -> int:
    account_id: int = await pool.fetchval(_Q["next_account_id"])
    return account_id


async def open_account(
    pool: Pool, ticket: IdempotencyTicket, account: NewAccount, stored: StoredResponse, ttl: int
) -> bool:
    """Store the account with its key and audit row; False when the key was taken."""
    won: bool = await pool.fetchval(
        _Q["open_account"],
        ticket.client_id, ticket.key, ticket.fingerprint, stored.status, stored.headers,
        stored.body, ttl,
        account.id, account.customer_ref, account.currency, account.opening_balance_minor,
        account.created_at, account.actor,
    )  # fmt: skip
    return won


async def get_account(pool: Pool, account_id: int, client_id: UUID) -> AccountResponse | None:
    row = await pool.fetchrow(_Q["get_account"], account_id, client_id)
    if row is None:
        return None
    return AccountResponse(
        id=row["id"],
        customer_ref=row["customer_ref"],
        currency=row["currency"],
        balance=format_minor(row["balance_minor"], row["currency"]),
        opening_balance=format_minor(row["opening_balance_minor"], row["currency"]),
        status=row["status"],
        created_at=row["created_at"],
    )


async def statement_head(pool: Pool, account_id: int, client_id: UUID) -> AccountHead | None:
    row = await pool.fetchrow(_Q["statement_head"], account_id, client_id)
    return None if row is None else AccountHead(**dict(row))


async def statement_transactions(
    pool: Pool, account_id: int, before: UUID | None, limit: int
) -> list[TransactionResponse]:
    rows = await pool.fetch(_Q["statement_transactions"], account_id, before, limit)
    return [transaction_from_row(row) for row in rows]


async def set_status(pool: Pool, account_id: int, status: str, actor: str) -> tuple[bool, bool]:
    """(changed, found)."""
    row = await pool.fetchrow(_Q["set_status"], account_id, status, actor)
    assert row is not None
    return bool(row["changed"]), bool(row["found"])


async def open_demo_account(pool: Pool, client_id: UUID, balance_minor: int, actor: str) -> None:
    await pool.execute(_Q["open_demo_account"], client_id, balance_minor, actor)

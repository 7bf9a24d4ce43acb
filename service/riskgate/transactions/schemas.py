"""Wire contract of the transaction endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

from msgspec import Meta

from riskgate.money import AmountInput, Currency, MoneyText, format_minor
from riskgate.wire import Wire


class Row(Protocol):
    """A database row (asyncpg.Record) read by column name."""

    def __getitem__(self, key: str) -> Any: ...


TransactionStatus = Literal["approved", "declined", "flagged_for_fraud"]
DeclineReason = Literal["insufficient_funds", "account_not_active", "fraud_threshold"]


AccountId = Annotated[int, Meta(ge=1, le=2**63 - 1, description="riskgate's id of the account")]


class DebitRequest(Wire):
    account_id: AccountId
    amount: AmountInput
    currency: Currency


class TransactionResponse(Wire):
    """A stored transaction, whatever its outcome (declined and flagged ones too)."""

    id: UUID
    account_id: int
    amount: MoneyText
    currency: str
    status: TransactionStatus
    reason: DeclineReason | None
    trace_id: str
    created_at: datetime


def transaction_from_row(row: Row) -> TransactionResponse:
    """The wire form of a ``transactions`` row (as the statement and GET endpoints read it)."""
    return TransactionResponse(
        id=row["id"],
        account_id=row["account_id"],
        amount=format_minor(row["amount_minor"], row["currency"]),
        currency=row["currency"],
        status=row["status"],
        reason=row["reason"],
        trace_id=row["trace_id"],
        created_at=row["created_at"],
    )

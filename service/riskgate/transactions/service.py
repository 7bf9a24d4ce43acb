"""Debiting an account: the rules, in the order the contract gives them.

1. an account that is not active declines (``account_not_active``);
2. a balance below the amount declines (``insufficient_funds``);
3. an amount above the fraud threshold is flagged, nothing deducted (``flagged_for_fraud``);
4. otherwise the debit is approved and the balance reduced.

The decision rests on a premise about the account (active and covered, active and not
covered, not active); the write statement checks that premise under the row lock and refuses to
write if it does not hold. The first round assumes the usual case without reading the account,
so a usual debit is one round trip; otherwise the account is read and the decision taken again.
Balances only ever go down (and an account only ever leaves ``active``), so this converges at
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

import msgspec
import uuid_utils.compat as uuid7

from riskgate.db import Pool
from riskgate.errors import AccountNotFound, ConcurrentUpdate, CurrencyMismatch, InvalidField
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.idempotency.service import settle
from riskgate.money import InvalidAmount, format_minor, minor_floor, to_minor
from riskgate.observability.metrics import record_transaction
from riskgate.transactions import repository
from riskgate.transactions.repository import AccountState, Premise, TransactionRecord
from riskgate.transactions.schemas import DebitRequest, DeclineReason, TransactionResponse

MAX_DECISION_ROUNDS = 8
Status = Literal["approved", "declined", "flagged_for_fraud"]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: DeclineReason | None
    premise: Premise

    @property
    def event_type(self) -> str:
        return {
            "approved": "transaction.approved",
            "declined": "transaction.declined",
            "flagged_for_fraud": "transaction.flagged",
        }[self.status]


def decide(account: AccountState, amount_minor: int, fraud_threshold_minor: int) -> Outcome:
    """The contract's precedence: not active, then insufficient funds, then fraud threshold."""
    if not account.active:
        return Outcome("declined", "account_not_active", "not_active")
    if account.balance_minor < amount_minor:
        return Outcome("declined", "insufficient_funds", "active_not_covered")
    if amount_minor > fraud_threshold_minor:
        return Outcome("flagged_for_fraud", "fraud_threshold", "active_and_covered")
    return Outcome("approved", None, "active_and_covered")


class TransactionService:
    def __init__(
        self,
        pool: Pool,
        *,
        fraud_threshold: Decimal,
        max_amount: Decimal,
        ttl_seconds: int,
        retry_after: int,
    ) -> None:
        self._pool = pool
        self._fraud_threshold = fraud_threshold
        self._max_amount = max_amount
        self._ttl = ttl_seconds
        self._retry_after = retry_after

    async def debit(
        self,
        ticket: IdempotencyTicket,
        request: DebitRequest,
        *,
        actor: str,
        trace: tuple[str, str | None],
    ) -> tuple[StoredResponse, bool]:
        """Store the transaction (any outcome) exactly once: (response, is it a replay)."""
        amount_minor = self._amount(request)
        # The first round assumes the usual case (an active account in this currency that covers
        # the amount), so a usual debit is one round trip; the statement checks the assumption
        # under the row lock, and any other case reads the account and decides again.
        account = AccountState(request.currency, amount_minor, active=True)
        for round_ in range(MAX_DECISION_ROUNDS):
            if round_:
                account = await self._account(request, ticket.client_id)
            threshold = minor_floor(self._fraud_threshold, account.currency)
            outcome = decide(account, amount_minor, threshold)
            record, stored = self._render(request, amount_minor, outcome, actor, trace)
            held, won = await repository.record_transaction(
                self._pool, ticket, record, stored, self._ttl
            )
            if not held:
                continue  # the account is not as assumed: read it and decide again
            if won:
                record_transaction(outcome.status)
            return await settle(self._pool, ticket, stored, won=won, retry_after=self._retry_after)
        raise ConcurrentUpdate(
            "the account is changing too fast to decide; retry", retry_after_seconds=1
        )

    async def _account(self, request: DebitRequest, client_id: UUID) -> AccountState:
        account = await repository.account_for_debit(self._pool, request.account_id, client_id)
        if account is None:
            raise AccountNotFound(f"no account {request.account_id}")
        if account.currency != request.currency:
            raise CurrencyMismatch(
                f"account {request.account_id} is in {account.currency}, not {request.currency}",
                field="currency",
            )
        return account

    def _amount(self, request: DebitRequest) -> int:
        try:
            return to_minor(request.amount, request.currency, maximum=self._max_amount)
        except InvalidAmount as exc:
            raise InvalidField(f"amount {exc}", field="amount") from None

    @staticmethod
    def _render(
        request: DebitRequest,
        amount_minor: int,
        outcome: Outcome,
        actor: str,
        trace: tuple[str, str | None],
    ) -> tuple[TransactionRecord, StoredResponse]:
        transaction_id = uuid7.uuid7()
        created_at = datetime.now(UTC)
        response = TransactionResponse(
            id=transaction_id,
            account_id=request.account_id,
            amount=format_minor(amount_minor, request.currency),
            currency=request.currency,
            status=outcome.status,
            reason=outcome.reason,
            trace_id=trace[0],
            created_at=created_at,
        )
        stored = StoredResponse(
            status=201,
            headers={"Location": f"/v1/transactions/{transaction_id}"},
            body=msgspec.json.encode(response),
        )
        record = TransactionRecord(
            id=transaction_id,
            account_id=request.account_id,
            amount_minor=amount_minor,
            currency=request.currency,
            status=outcome.status,
            reason=outcome.reason,
            premise=outcome.premise,
            trace_id=trace[0],
            created_at=created_at,
            event_type=outcome.event_type,
            payload=response,
            traceparent=trace[1],
            actor=actor,
        )
        return record, stored

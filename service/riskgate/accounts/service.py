"""Opening accounts and reading statements."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import msgspec

from riskgate.accounts import repository
from riskgate.accounts.repository import NewAccount
from riskgate.accounts.schemas import AccountResponse, OpenAccount, Statement
from riskgate.db import Pool
from riskgate.errors import AccountNotFound, InvalidField
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.idempotency.service import settle
from riskgate.money import InvalidAmount, format_minor, to_minor


class AccountService:
    def __init__(self, pool: Pool, *, max_amount: Decimal, ttl_seconds: int, retry_after: int):
        self._pool = pool
        self._max_amount = max_amount
        self._ttl = ttl_seconds
        self._retry_after = retry_after

    async def open(
        self, ticket: IdempotencyTicket, request: OpenAccount, *, actor: str
    ) -> tuple[StoredResponse, bool]:
        try:
            opening = to_minor(
                request.opening_balance, request.currency, maximum=self._max_amount, allow_zero=True
            )
        except InvalidAmount as exc:
            raise InvalidField(f"opening_balance {exc}", field="opening_balance") from None
        # The id comes first so the response (stored with the key) can be rendered before the
        # one statement that writes everything; a replay burns a sequence value, nothing more.
        account = NewAccount(
            id=await repository.next_account_id(self._pool),
            customer_ref=request.customer_ref,
            currency=request.currency,
            opening_balance_minor=opening,
            created_at=datetime.now(UTC),
            actor=actor,
        )
        stored = _stored(account)
        won = await repository.open_account(self._pool, ticket, account, stored, self._ttl)
        return await settle(self._pool, ticket, stored, won=won, retry_after=self._retry_after)

    async def get(self, account_id: int, client_id: UUID) -> AccountResponse:
        account = await repository.get_account(self._pool, account_id, client_id)
        if account is None:
            raise AccountNotFound(f"no account {account_id}")
        return account

    async def statement(
        self, account_id: int, client_id: UUID, *, before: UUID | None, limit: int
    ) -> tuple[Statement, bool]:
        """The statement page and whether more transactions follow."""
        head = await repository.statement_head(self._pool, account_id, client_id)
        if head is None:
            raise AccountNotFound(f"no account {account_id}")
        rows = await repository.statement_transactions(self._pool, account_id, before, limit + 1)
        more = len(rows) > limit
        statement = Statement(
            account_id=head.id,
            customer_ref=head.customer_ref,
            currency=head.currency,
            balance=format_minor(head.balance_minor, head.currency),
            status=head.status,
            transactions=rows[:limit],
            next_cursor=None,
        )
        return statement, more


def _stored(account: NewAccount) -> StoredResponse:
    opening = format_minor(account.opening_balance_minor, account.currency)
    response = AccountResponse(
        id=account.id,
        customer_ref=account.customer_ref,
        currency=account.currency,
        balance=opening,
        opening_balance=opening,
        status="active",
        created_at=account.created_at,
    )
    return StoredResponse(
        status=201,
        headers={"Location": f"/v1/accounts/{account.id}"},
        body=msgspec.json.encode(response),
    )

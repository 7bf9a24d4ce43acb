"""Wire contract of the account endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from riskgate.money import AmountInput, Currency, MoneyText
from riskgate.transactions.schemas import TransactionResponse
from riskgate.wire import Page, Wire, whole

AccountStatus = Literal["active", "frozen", "closed"]

CustomerRef = Annotated[
    str,
    Meta(
        pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"),
        description="A pseudonymous reference to the customer (never a name or an e-mail).",
        examples=["cust_7f3a91"],
    ),
]


class OpenAccount(Wire):
    customer_ref: CustomerRef
    currency: Currency
    opening_balance: AmountInput


class AccountResponse(Wire):
    id: int
    customer_ref: str
    currency: str
    balance: MoneyText
    opening_balance: MoneyText
    status: AccountStatus
    created_at: datetime


class Statement(Page):
    account_id: int
    customer_ref: str
    currency: str
    balance: MoneyText
    status: AccountStatus
    transactions: list[TransactionResponse]

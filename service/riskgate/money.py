"""Money: integer minor units plus an ISO 4217 currency, never floats.

Amounts arrive as JSON numbers or decimal strings; msgspec decodes both straight into
``Decimal`` from their text, so ``10.10`` is exactly ten pounds ten. Validation then insists the
value is finite, positive, within the maximum, and has no more decimals than the currency has.
``AmountInput`` is the only Decimal in any request struct: the body decoder
(``riskgate.http.body``) holds every Decimal field's string form to plain ASCII digits.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, Final, Literal, get_args

from msgspec import Meta

Currency = Literal[
    "AUD", "BHD", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ISK", "JOD", "JPY",
    "KRW", "KWD", "NOK", "NZD", "OMR", "PLN", "SEK", "SGD", "TND", "USD",
]  # fmt: skip
CURRENCIES: Final[tuple[str, ...]] = get_args(Currency)

AmountInput = Annotated[
    Decimal,
    Meta(
        description=(
            "A JSON number or a decimal string, with at most the currency's decimals; NaN, "
            "infinities, negatives and zero are rejected (an opening balance may be zero)."
        ),
        examples=["100000.00"],
    ),
]
MoneyText = Annotated[str, Meta(description="A decimal string in major units", examples=["10.50"])]

# ISO 4217 minor-unit exponents for the supported currencies; everything else has two.
_EXPONENTS: Final = {
    "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3,
    "ISK": 0, "JPY": 0, "KRW": 0,
}  # fmt: skip


class InvalidAmount(ValueError):
    """The amount cannot be money in this currency; the message says why."""


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def to_minor(amount: Decimal, currency: str, *, maximum: Decimal, allow_zero: bool = False) -> int:
    """``amount`` in minor units, or ``InvalidAmount`` naming what is wrong with it."""
    if not amount.is_finite():
        raise InvalidAmount("must be a finite number")
    if amount < 0 or amount.is_signed():
        raise InvalidAmount("must not be negative")
    if amount == 0 and not allow_zero:
        raise InvalidAmount("must be greater than zero")
    if amount > maximum:
        raise InvalidAmount(f"must not exceed {maximum}")
    places = exponent(currency)
    scaled = amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise InvalidAmount(f"{currency} has {places} decimal place(s) at most")
    return int(scaled)


def minor_floor(amount: Decimal, currency: str) -> int:
    """A configured bound in minor units, rounded down (a threshold needs no exact cents)."""
    return int(amount.scaleb(exponent(currency)).to_integral_value(ROUND_FLOOR))


def format_minor(minor: int, currency: str) -> str:
    """Minor units as the decimal string responses carry: ``1050, GBP`` -> ``"10.50"``."""
    places = exponent(currency)
    return f"{Decimal(minor).scaleb(-places):.{places}f}"

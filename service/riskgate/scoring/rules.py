"""The scoring rules: a pure function from (rule version, signals) to a decision.

Arithmetic is decimal, not binary floating point, so the same input gives the same score on
every machine and a value such as 29.95 rounds the way a person expects (half up).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import get_args

import msgspec

from riskgate.scoring.schemas import Action, Decision, Reason, SignalName, Signals

SIGNALS: tuple[SignalName, ...] = get_args(SignalName)
_ONE_DECIMAL = Decimal("0.1")


class RuleVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A rule version as stored in ``rule_versions``: weights and action thresholds."""

    version: str
    weights: dict[SignalName, Decimal]
    review_threshold: Decimal
    hold_threshold: Decimal

    def __post_init__(self) -> None:
        if set(self.weights) != set(SIGNALS):
            raise ValueError(f"rule {self.version}: weights must cover exactly {SIGNALS}")


class InvalidRuleVersion(ValueError):
    """A proposed rule version the scoring could not run, or the table would not store."""


_VERSION = re.compile(r"[a-z0-9_]{1,32}")
_MAX_SCORE = Decimal(100)


def parse_weights(text: str) -> dict[str, Decimal]:
    """``delay=30,weather=25,geo=25,payment_anomaly=20`` -> {signal: weight}."""
    weights: dict[str, Decimal] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidRuleVersion(f"weights: {item!r} is not signal=weight")
        weights[name.strip()] = _decimal(f"weight of {name.strip()}", value.strip())
    return weights


def _decimal(what: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidRuleVersion(f"{what}: {text!r} is not a number") from None
    if not value.is_finite():
        raise InvalidRuleVersion(f"{what}: {text!r} is not a number")
    return value


def _one_decimal(what: str, value: Decimal) -> None:
    if value < 0 or value > _MAX_SCORE or value != value.quantize(_ONE_DECIMAL):
        raise InvalidRuleVersion(f"{what} must be in [0, 100] with at most one decimal")


def new_rule_version(
    version: str, weights: dict[str, Decimal], review_threshold: str, hold_threshold: str
) -> RuleVersion:
    """A rule version checked as the scoring needs it: weights for exactly the signals, none
    negative, summing to at most 100 (every signal at 1 must still score within [0, 100]);
    thresholds in [0, 100] with one decimal (what the table stores), review <= hold."""
    if not _VERSION.fullmatch(version):
        raise InvalidRuleVersion("version must be 1-32 characters of a-z 0-9 _")
    if set(weights) != set(SIGNALS):
        raise InvalidRuleVersion(f"weights must name exactly {', '.join(SIGNALS)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) > _MAX_SCORE:
        raise InvalidRuleVersion("weights must be non-negative and sum to at most 100")
    review = _decimal("review threshold", review_threshold)
    hold = _decimal("hold threshold", hold_threshold)
    _one_decimal("review threshold", review)
    _one_decimal("hold threshold", hold)
    if review > hold:
        raise InvalidRuleVersion("review threshold must not exceed the hold threshold")
    return msgspec.convert(
        {"version": version, "weights": {k: str(v) for k, v in weights.items()},
         "review_threshold": str(review), "hold_threshold": str(hold)},
        RuleVersion,
        strict=False,
    )  # fmt: skip


def _exact(value: float) -> Decimal:
    # str() of a float is its shortest round-tripping form: 0.7 -> Decimal("0.7"), not 0.6999...
    return Decimal(str(value))


def action_for(score: Decimal, rule: RuleVersion) -> Action:
    if score >= rule.hold_threshold:
        return "hold"
    if score >= rule.review_threshold:
        return "review"
    return "allow"


def evaluate(rule: RuleVersion, signals: Signals) -> Decision:
    """Score ``signals`` under ``rule``; reasons are ordered largest contribution first."""
    values = {name: _exact(getattr(signals, name)) for name in SIGNALS}
    contributions = {name: rule.weights[name] * values[name] for name in SIGNALS}
    score = sum(contributions.values(), Decimal(0)).quantize(_ONE_DECIMAL, ROUND_HALF_UP)
    # Stable sort: equal contributions keep the declared signal order, so output is deterministic.
    ranked = sorted(SIGNALS, key=lambda name: contributions[name], reverse=True)
    reasons = [
        Reason(
            signal=name,
            value=float(values[name]),
            weight=float(rule.weights[name]),
            contribution=float(contributions[name]),
        )
        for name in ranked
    ]
    return Decision(
        score=float(score),
        action=action_for(score, rule),
        score_version=rule.version,
        reasons=reasons,
    )

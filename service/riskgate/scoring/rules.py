"""The scoring rules: a pure function from (rule version, signals) to a decision.

Arithmetic is decimal, not binary floating point, so the same input gives the same score on
every machine and a value such as 29.95 rounds the way a person expects (half up).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
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

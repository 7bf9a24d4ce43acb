"""The v0_rules scoring function: weights, rounding, thresholds and determinism."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from riskgate.scoring.rules import RuleVersion, evaluate
from riskgate.scoring.schemas import Signals

V0 = RuleVersion(
    version="v0_rules",
    weights={
        "delay": Decimal(30),
        "weather": Decimal(25),
        "geo": Decimal(25),
        "payment_anomaly": Decimal(20),
    },
    review_threshold=Decimal("30.0"),
    hold_threshold=Decimal("60.0"),
)


def signals(
    delay: float = 0, weather: float = 0, geo: float = 0, payment_anomaly: int = 0
) -> Signals:
    return msgspec.convert(
        {"delay": delay, "weather": weather, "geo": geo, "payment_anomaly": payment_anomaly},
        Signals,
    )


def test_the_documented_example_is_38_5_review() -> None:
    decision = evaluate(V0, signals(delay=0.7, weather=0.5, geo=0.2))
    assert (decision.score, decision.action, decision.score_version) == (38.5, "review", "v0_rules")


@pytest.mark.parametrize(
    ("given", "score", "action"),
    [
        (signals(delay=0.33), 9.9, "allow"),
        (signals(payment_anomaly=1, geo=0.396), 29.9, "allow"),
        (signals(payment_anomaly=1, geo=0.4), 30.0, "review"),
        (signals(delay=1, weather=0.596), 44.9, "review"),
        (signals(delay=1, weather=1, geo=0.196), 59.9, "review"),
        (signals(delay=1, weather=1, geo=0.2), 60.0, "hold"),
        (signals(delay=1, weather=1, geo=1, payment_anomaly=1), 100.0, "hold"),
        (signals(), 0.0, "allow"),
    ],
    ids=["9.9", "29.9", "30", "44.9", "59.9", "60", "100", "0"],
)
def test_threshold_boundaries(given: Signals, score: float, action: str) -> None:
    decision = evaluate(V0, given)
    assert (decision.score, decision.action) == (score, action)


def test_rounding_is_half_up_on_the_exact_decimal_sum() -> None:
    # 0.999 * 30 = 29.97 -> 30.0 (review); 0.998 * 30 = 29.94 -> 29.9 (allow).
    assert (
        evaluate(V0, signals(delay=0.999)).score,
        evaluate(V0, signals(delay=0.999)).action,
    ) == (
        30.0,
        "review",
    )
    assert evaluate(V0, signals(delay=0.998)).score == 29.9
    # 0.0995 * 30 = 2.985 exactly in decimal (binary floats would say 2.98499...): rounds to 3.0
    assert evaluate(V0, signals(delay=0.0995)).score == 3.0


def test_reasons_are_each_contribution_largest_first_ties_in_declared_order() -> None:
    decision = evaluate(V0, signals(delay=0.5, weather=0.6, geo=0.6, payment_anomaly=1))
    assert [(r.signal, r.contribution) for r in decision.reasons] == [
        ("payment_anomaly", 20.0),
        ("delay", 15.0),
        ("weather", 15.0),
        ("geo", 15.0),
    ]
    assert sum(r.contribution for r in decision.reasons) == decision.score


def test_same_input_same_output_every_time() -> None:
    given = signals(delay=0.123, weather=0.456, geo=0.789, payment_anomaly=1)
    first = msgspec.json.encode(evaluate(V0, given))
    assert all(msgspec.json.encode(evaluate(V0, given)) == first for _ in range(100))


def test_a_rule_version_must_weight_every_signal() -> None:
    with pytest.raises(ValueError, match="weights must cover"):
        RuleVersion(
            version="bad",
            weights={"delay": Decimal(1)},  # type: ignore[dict-item]
            review_threshold=Decimal(30),
            hold_threshold=Decimal(60),
        )

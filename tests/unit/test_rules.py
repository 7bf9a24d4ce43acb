"""The v0_rules scoring function: weights, rounding, thresholds and determinism."""

from __future__ import annotations

import os
import subprocess
import sys
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


# Inputs with a three-way tie (the order of equal reasons must not depend on anything) and an
# exact-decimal rounding edge, and the bytes every process must produce for them.
PINNED = (
    (
        {"delay": 0.5, "weather": 0.6, "geo": 0.6, "payment_anomaly": 1},
        b'{"score":65.0,"action":"hold","score_version":"v0_rules","reasons":['
        b'{"signal":"payment_anomaly","value":1.0,"weight":20.0,"contribution":20.0},'
        b'{"signal":"delay","value":0.5,"weight":30.0,"contribution":15.0},'
        b'{"signal":"weather","value":0.6,"weight":25.0,"contribution":15.0},'
        b'{"signal":"geo","value":0.6,"weight":25.0,"contribution":15.0}]}',
    ),
    (
        {"delay": 0.0995, "weather": 0.333, "geo": 0.1, "payment_anomaly": 0},
        b'{"score":13.8,"action":"allow","score_version":"v0_rules","reasons":['
        b'{"signal":"weather","value":0.333,"weight":25.0,"contribution":8.325},'
        b'{"signal":"delay","value":0.0995,"weight":30.0,"contribution":2.985},'
        b'{"signal":"geo","value":0.1,"weight":25.0,"contribution":2.5},'
        b'{"signal":"payment_anomaly","value":0.0,"weight":20.0,"contribution":0.0}]}',
    ),
)

_EVALUATE_IN_A_FRESH_PROCESS = """
import sys
from decimal import Decimal
import msgspec
from riskgate.scoring.rules import RuleVersion, evaluate
from riskgate.scoring.schemas import Signals
rule = RuleVersion(version="v0_rules", weights={name: Decimal(w) for name, w in
    (("delay", 30), ("weather", 25), ("geo", 25), ("payment_anomaly", 20))},
    review_threshold=Decimal("30.0"), hold_threshold=Decimal("60.0"))
for line in sys.stdin.buffer:
    sys.stdout.buffer.write(msgspec.json.encode(
        evaluate(rule, msgspec.json.decode(line, type=Signals))) + b"\\n")
"""


def test_same_input_same_output_in_every_process() -> None:
    """The pinned bytes, here and in fresh interpreters with other hash seeds: nothing about
    the process (set or dict order, float formatting, rounding context) may change a decision."""
    assert [msgspec.json.encode(evaluate(V0, signals(**given))) for given, _ in PINNED] == [
        expected for _, expected in PINNED
    ]
    stdin = b"".join(msgspec.json.encode(given) + b"\n" for given, _ in PINNED)
    for seed in ("0", "1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", _EVALUATE_IN_A_FRESH_PROCESS],
            input=stdin,
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        assert out.splitlines() == [expected for _, expected in PINNED], f"seed {seed}"


def test_a_rule_version_must_weight_every_signal() -> None:
    with pytest.raises(ValueError, match="weights must cover"):
        RuleVersion(
            version="bad",
            weights={"delay": Decimal(1)},  # type: ignore[dict-item]
            review_threshold=Decimal(30),
            hold_threshold=Decimal(60),
        )

"""The retry schedule, its jitter and Retry-After, and how responses are classified."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from riskgate.webhooks.delivery import DeliveryConfig, Result, classify_status, verdict
from riskgate.webhooks.retry import next_delay, parse_duration, parse_retry_after, parse_schedule

DEFAULT = parse_schedule("0s,5s,5m,30m,2h,5h,10h,10h")


def test_the_default_schedule() -> None:
    assert DEFAULT == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize("text", ["", "5", "5x", "-1s", ",", "s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|at least one"):
        parse_schedule(text) if "," in text or not text else parse_duration(text)


def test_delay_is_jittered_within_bounds_and_none_after_the_last_attempt() -> None:
    rng = random.Random(7)
    delays = [next_delay(DEFAULT, 2, jitter=0.1, rng=rng) for _ in range(200)]
    assert all(d is not None and 270 <= d <= 330 for d in delays)
    assert len(set(delays)) > 100
    assert next_delay(DEFAULT, len(DEFAULT), jitter=0.1) is None


def test_retry_after_wins_when_larger_and_is_capped() -> None:
    assert next_delay(DEFAULT, 1, jitter=0, retry_after=60) == 60
    assert next_delay(DEFAULT, 1, jitter=0, retry_after=1) == 5
    assert next_delay(DEFAULT, 1, jitter=0, retry_after=10**9, retry_after_max=3600) == 3600


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30)), now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "success"), (204, "success"), (301, "permanent"), (400, "permanent"),
        (404, "permanent"), (408, "temporary"), (410, "gone"), (429, "temporary"),
        (500, "temporary"), (503, "temporary"),
    ],
)  # fmt: skip
def test_status_classification(status: int, kind: str) -> None:
    assert classify_status(status)[0] == kind


def test_verdicts_follow_the_schedule() -> None:
    config = DeliveryConfig("Riskgate-Signature", 15, 1024, (0.0, 1.0, 2.0), 0.0, 86400.0)
    temporary = Result("temporary", 0.1, status_code=500, error_class="http_5xx")
    assert verdict(temporary, 1, config).outcome == "retrying"
    assert verdict(temporary, 1, config).retry_in == 1.0
    assert verdict(temporary, 3, config).outcome == "exhausted"
    assert verdict(Result("permanent", 0.1), 1, config).outcome == "failed"
    assert verdict(Result("gone", 0.1), 1, config).outcome == "failed"
    assert verdict(Result("success", 0.1), 3, config).outcome == "succeeded"

"""The rate limits the API lets a client be given: every one the published pattern matches is a
policy the limiter takes, so the OpenAPI document (and the ApiClient CRD) never allow a limit the
service then refuses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskgate.ratelimit.limiter import API_POLICY_PATTERN, RateLimitPolicy


@given(st.from_regex(API_POLICY_PATTERN, fullmatch=True))
def test_every_policy_the_pattern_matches_is_one_the_limiter_takes(text: str) -> None:
    policy = RateLimitPolicy.parse(text)
    assert policy.limit >= 1
    assert policy.window_seconds >= 1


@pytest.mark.parametrize(
    "text",
    ["100/60s", "10/s", "5000/1h", "9999999/99999s", "9999999/999m", "9999999/99h", "9999999/5d"],
)
def test_the_largest_of_each_unit_matches(text: str) -> None:
    assert re.fullmatch(API_POLICY_PATTERN, text)
    RateLimitPolicy.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "10000000/s",
        "1/100000s",
        "1/1000m",
        "1/100h",
        "1/6d",
        "0/s",
        "01/s",
        "1/0s",
        "10/s\n",
        " 10/s",
        "10 / s",
    ],
)
def test_beyond_the_bounds_or_loosely_written_does_not_match(text: str) -> None:
    assert not re.fullmatch(API_POLICY_PATTERN, text)

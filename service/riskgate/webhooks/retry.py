"""When a failed delivery is tried again.

The schedule ``d_0, d_1, ..., d_{N-1}`` (``RISKGATE_WEBHOOK_RETRY_SCHEDULE``, by default
``0s,5s,5m,30m,2h,5h,10h,10h``) gives the delay before each attempt of a cycle: ``d_0`` before
the first, ``d_k`` after the k-th attempt failed. After the N-th failed attempt the delivery is
``exhausted`` (a replay starts a new cycle). With jitter ``j`` and a receiver's ``Retry-After``
of ``r`` seconds (429 and 503 only, capped at ``r_max``)::

    delay_k = max(d_k * U(1 - j, 1 + j), min(r, r_max))

U is uniform; the jitter spreads the retries of many deliveries that failed together (an
outage of the receiver) so they do not come back as one burst.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str) -> float:
    """``"250ms"``, ``"5s"``, ``"30m"``, ``"2h"``, ``"1d"`` in seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a duration such as 5s, 30m or 2h")
    return float(match[1]) * _UNITS[match[2]]


def parse_schedule(text: str) -> tuple[float, ...]:
    """A comma-separated list of durations, at least one."""
    schedule = tuple(parse_duration(part) for part in text.split(",") if part.strip())
    if not schedule:
        raise ValueError("the schedule needs at least one delay")
    return schedule


def next_delay(
    schedule: tuple[float, ...],
    attempts_made: int,
    *,
    jitter: float,
    retry_after: float | None = None,
    retry_after_max: float = 86400.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones; None: exhausted."""
    if attempts_made >= len(schedule):
        return None
    uniform = (rng or random).uniform
    delay = schedule[attempts_made] * uniform(1.0 - jitter, 1.0 + jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

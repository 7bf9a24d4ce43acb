"""Wire contract of POST /v1/score."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from msgspec import Meta

from riskgate.wire import Wire, whole

Action = Literal["allow", "review", "hold"]
SignalName = Literal["delay", "weather", "geo", "payment_anomaly"]
EVENT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
SOURCE_PATTERN = r"[a-z][a-z0-9_-]{1,31}"
UnitInterval = Annotated[float, Meta(ge=0.0, le=1.0, description="A value in [0, 1].")]

EventId = Annotated[
    str,
    Meta(
        pattern=whole(EVENT_ID_PATTERN),
        description="The client's own id for the event, unique per client: 1-128 of A-Za-z0-9._:-",
        examples=["bk_20261123_0001"],
    ),
]
Source = Annotated[
    str,
    Meta(
        pattern=whole(SOURCE_PATTERN),
        description="Where the event comes from: a lowercase slug such as flight, hotel or rail.",
        examples=["flight"],
    ),
]


class Signals(Wire):
    """Non-personal risk signals. Out-of-range values are rejected, never clamped."""

    delay: UnitInterval
    weather: UnitInterval
    geo: UnitInterval
    payment_anomaly: Literal[0, 1]


class ScoreRequest(Wire):
    event_id: EventId
    source: Source
    signals: Signals


class Reason(Wire):
    """One signal's share of the score: ``contribution = weight * value``."""

    signal: SignalName
    value: float
    weight: float
    contribution: float


class Decision(Wire):
    score: float
    action: Action
    score_version: str
    reasons: list[Reason]


class DecisionResponse(Wire):
    """What POST /v1/score returns (and what a replay returns, byte for byte)."""

    id: UUID
    event_id: str
    source: str
    score: float
    action: Action
    score_version: str
    reasons: list[Reason]
    trace_id: str
    created_at: datetime

"""Secret rotation as plain functions: what is due, and the state after each step.

The owned Secret is the record of rotation (its annotations say when it rotated, until when the
previous secret signs, and which rotation request it answered), written in one update. So an
operator restarted at any point finds either the old state or the new one, never half of it:
no lost secret, no second rotation for the same request, no early drop.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

SECRET_PREFIX = "whsec_"  # noqa: S105  # a format marker, not a secret
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_EVERY = "720h"
DEFAULT_OVERLAP = "24h"


def parse_duration(text: str) -> timedelta:
    """A Go/Kubernetes duration such as ``720h``, ``1h30m``, ``90s``, ``1.5h``, ``500ms``."""
    if not _DURATION.match(text):
        raise ValueError(f"not a duration: {text!r} (use e.g. 720h, 1h30m, 90s)")
    return timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in _PART.findall(text)))


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (the service takes 24 or more)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True)
class Rotation:
    every: timedelta
    overlap: timedelta


def policy_of(policy: object) -> Rotation:
    """A rotation policy object (``{every, overlap}``), with the CRDs' defaults."""
    policy = policy or {}
    assert isinstance(policy, dict)
    return Rotation(
        every=parse_duration(str(policy.get("every", DEFAULT_EVERY))),
        overlap=parse_duration(str(policy.get("overlap", DEFAULT_OVERLAP))),
    )


def rotation_of(spec: dict[str, object]) -> Rotation | None:
    """The spec's rotation policy, with the CRD's defaults; None for a secret brought along."""
    if spec.get("secretRef"):
        return None
    return policy_of(spec.get("secretRotation"))


@dataclass(frozen=True, slots=True)
class SecretState:
    current: str
    rotated_at: datetime
    previous: str | None = None
    previous_expires_at: datetime | None = None
    handled_request: str | None = None
    """The ``riskgate.io/rotate-requested-at`` value the latest rotation (or creation) answered."""


class Step(Enum):
    CREATE = "create"
    ROTATE = "rotate"
    DROP_PREVIOUS = "drop-previous"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Plan:
    step: Step
    trigger: str | None = None
    """For ROTATE: ``schedule`` or ``annotation``."""


def plan(
    state: SecretState | None, rotation: Rotation, requested: str | None, now: datetime
) -> Plan:
    """What the owned Secret needs now (a rotation due during an overlap waits: see ``due``)."""
    if state is None:
        return Plan(Step.CREATE)
    overlap_until = state.previous_expires_at if state.previous is not None else None
    trigger = due(Clock(state.rotated_at, state.handled_request, overlap_until), rotation,
                  requested, now)  # fmt: skip
    if trigger is not None:
        return Plan(Step.ROTATE, trigger)
    if state.previous is not None and not overlapping(overlap_until, now):
        return Plan(Step.DROP_PREVIOUS)
    return Plan(Step.KEEP)


@dataclass(frozen=True, slots=True)
class Clock:
    """What any rotated credential records about its rotation (a signing secret, an API
    client's pair): the common ground of the planning below."""

    rotated_at: datetime
    handled_request: str | None
    """The ``riskgate.io/rotate-requested-at`` value the latest rotation answered."""
    overlap_until: datetime | None
    """When the credential replaced last stops working beside the current one."""


def overlapping(overlap_until: datetime | None, now: datetime) -> bool:
    return overlap_until is not None and now < overlap_until


def due(clock: Clock, rotation: Rotation, requested: str | None, now: datetime) -> str | None:
    """The trigger of a rotation due now (``annotation`` or ``schedule``), or None.

    Never while the replaced credential still overlaps: rotating then would cut it before the
    time its users were promised (it would wait for the overlap's end)."""
    if overlapping(clock.overlap_until, now):
        return None
    if requested and requested != clock.handled_request:
        return "annotation"
    if now >= clock.rotated_at + rotation.every:
        return "schedule"
    return None


def next_rotation(state: SecretState, rotation: Rotation) -> datetime:
    return state.rotated_at + rotation.every


def next_check(state: SecretState, rotation: Rotation) -> datetime:
    """The next moment the plan can change by itself (rotation due or overlap over)."""
    due = next_rotation(state, rotation)
    if state.previous is not None and state.previous_expires_at is not None:
        return min(due, state.previous_expires_at)
    return due


def created(now: datetime, requested: str | None) -> SecretState:
    # A request already on a new resource is answered by its first secret.
    return SecretState(current=new_secret(), rotated_at=now, handled_request=requested)


def rotated(
    state: SecretState, rotation: Rotation, requested: str | None, now: datetime
) -> SecretState:
    return SecretState(
        current=new_secret(),
        rotated_at=now,
        previous=state.current,
        previous_expires_at=now + rotation.overlap,
        handled_request=requested or state.handled_request,
    )


def dropped(state: SecretState) -> SecretState:
    return replace(state, previous=None, previous_expires_at=None)


def apply(
    step: Step, state: SecretState | None, rotation: Rotation, requested: str | None, now: datetime
) -> SecretState | None:
    """The state after ``step`` (None: nothing changes)."""
    if step is Step.CREATE:
        return created(now, requested)
    assert state is not None
    if step is Step.ROTATE:
        return rotated(state, rotation, requested, now)
    if step is Step.DROP_PREVIOUS:
        return dropped(state)
    return None

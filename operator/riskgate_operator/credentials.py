"""An ApiClient's credentials as plain functions: the pair, the Secret that records it, and what
is due.

The operator makes every pair itself and the service stores only their hashes, so no answer
can be lost. A new pair is first written to the Secret as *pending* (keys workloads do not
read), then proposed to the service (PUT on creation, rotate otherwise; proposing the same pair
again changes nothing), then promoted to current in one Secret update. An operator stopped at
any point finds the pair it proposed, never a pair only the service knows.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from riskgate_operator import kube, schedule
from riskgate_operator.schedule import Clock, Rotation

SECRET_PREFIX = "rgs_"  # noqa: S105  # format markers, not secrets
KEY_PREFIX = "rgk_"
KEY_PREFIX_LENGTH = len(KEY_PREFIX) + 6
"""The service lists working keys by this many leading characters (``api_key_prefixes``)."""

CLIENT_ID, CLIENT_SECRET, API_KEY = "client_id", "client_secret", "api_key"
SCOPE, TOKEN_URL, API_URL = "scope", "token_url", "api_url"
PENDING_SECRET, PENDING_KEY = "pending_client_secret", "pending_api_key"
PENDING_TRIGGER = f"{kube.GROUP}/pending-trigger"
PENDING_REQUEST = f"{kube.GROUP}/pending-request"

CREATE, HEAL = "create", "heal"
"""Triggers of a new pair besides a rotation's (``schedule``, ``annotation``)."""


@dataclass(frozen=True, slots=True)
class Pair:
    client_secret: str
    api_key: str


def new_pair() -> Pair:
    """``rgs_``/``rgk_`` + 43 characters of base64url (32 random bytes each)."""
    return Pair(SECRET_PREFIX + secrets.token_urlsafe(32), KEY_PREFIX + secrets.token_urlsafe(32))


@dataclass(frozen=True, slots=True)
class Published:
    """What the Secret tells a workload besides the pair."""

    client_id: str
    scope: str
    token_url: str
    api_url: str


def published(namespace: str, name: str, spec: dict[str, Any], base_url: str) -> Published:
    return Published(
        client_id=f"{namespace}.{name}",
        scope=" ".join(sorted(set(spec["scopes"]))),
        token_url=f"{base_url}/oauth2/token",
        api_url=base_url,
    )


@dataclass(frozen=True, slots=True)
class Record:
    """What an ApiClient's Secret records."""

    current: Pair | None
    rotated_at: datetime | None = None
    previous_expires_at: datetime | None = None
    """Until when the pair the latest rotation replaced keeps working."""
    handled_request: str | None = None
    pending: Pair | None = None
    pending_trigger: str | None = None
    pending_request: str | None = None
    """The rotation request the pending pair answers once promoted."""


def secret_name(name: str, spec: dict[str, Any]) -> str:
    return str(spec.get("secretName") or f"{name}-riskgate-credentials")


def first(requested: str | None) -> Record:
    """A new ApiClient's record: a pending pair only (a request already there is answered)."""
    return proposed(Record(current=None), CREATE, requested)


def proposed(record: Record, trigger: str, requested: str | None) -> Record:
    return replace(
        record,
        pending=new_pair(),
        pending_trigger=trigger,
        pending_request=requested or record.handled_request,
    )


def promoted(record: Record, now: datetime, previous_expires_at: datetime | None) -> Record:
    """The pending pair made current (the service took it)."""
    assert record.pending is not None
    return Record(
        current=record.pending,
        rotated_at=now,
        previous_expires_at=previous_expires_at,
        handled_request=record.pending_request,
    )


def key_known(view: dict[str, Any], pair: Pair) -> bool:
    return pair.api_key[:KEY_PREFIX_LENGTH] in (view.get("api_key_prefixes") or [])


def rotation_due(
    record: Record, rotation: Rotation, requested: str | None, now: datetime
) -> str | None:
    """The trigger of a rotation due now (``annotation``, ``schedule``), or None: none while a
    pair is pending or the replaced one still works (see ``schedule.due``). Needs no answer
    from the service, so a rotation is written down even while the service is away."""
    if record.current is None or record.rotated_at is None or record.pending is not None:
        return None
    clock = Clock(record.rotated_at, record.handled_request, record.previous_expires_at)
    return schedule.due(clock, rotation, requested, now)


def needs_heal(record: Record, view: dict[str, Any]) -> bool:
    """The service no longer takes the Secret's pair (e.g. restored from a backup): a new pair
    at once, without waiting for an overlap, as the workloads' one works nowhere."""
    if record.pending is not None:
        return False
    return record.current is None or not key_known(view, record.current)


def overlap_of(record: Record, rotation: Rotation) -> timedelta:
    """How long the replaced pair keeps working: none when it never worked."""
    if record.current is None or record.pending_trigger in (CREATE, HEAL):
        return timedelta(0)
    return rotation.overlap


def rotate_body(record: Record, overlap: timedelta) -> dict[str, Any]:
    """POST .../rotate to the pending pair (the same body again changes nothing)."""
    assert record.pending is not None
    return {
        "overlap_seconds": math.ceil(overlap.total_seconds()),
        "credentials": _wire(record.pending),
    }


def spec_body(spec: dict[str, Any]) -> dict[str, Any]:
    """The service's view of the spec (PUT /v1/admin/clients/...), credentials aside."""
    return {
        "scopes": sorted(set(spec["scopes"])),
        "rate_limit": spec.get("rateLimit"),
        "status": "disabled" if spec.get("suspend") else "active",
    }


def proposal(record: Record) -> dict[str, str] | None:
    """The pair a PUT that creates the client gives it: the pending one, else the current."""
    pair = record.pending or record.current
    return None if pair is None else _wire(pair)


def _wire(pair: Pair) -> dict[str, str]:
    return {"client_secret": pair.client_secret, "api_key": pair.api_key}


def record_of(secret: dict[str, Any]) -> Record:
    data = secret.get("data") or {}
    notes = (secret.get("metadata") or {}).get("annotations") or {}
    return Record(
        current=_pair(kube.decode(data, CLIENT_SECRET), kube.decode(data, API_KEY)),
        rotated_at=kube.moment(notes.get(kube.ROTATED_AT)),
        previous_expires_at=kube.moment(notes.get(kube.PREVIOUS_EXPIRES_AT)),
        handled_request=notes.get(kube.ROTATION_REQUEST) or None,
        pending=_pair(kube.decode(data, PENDING_SECRET), kube.decode(data, PENDING_KEY)),
        pending_trigger=notes.get(PENDING_TRIGGER) or None,
        pending_request=notes.get(PENDING_REQUEST) or None,
    )


def published_of(secret: dict[str, Any]) -> Published | None:
    data = secret.get("data") or {}
    values = [kube.decode(data, key) for key in (CLIENT_ID, SCOPE, TOKEN_URL, API_URL)]
    return None if None in values else Published(*values)  # type: ignore[arg-type]


def _pair(client_secret: str | None, api_key: str | None) -> Pair | None:
    return None if client_secret is None or api_key is None else Pair(client_secret, api_key)


def secret_fields(
    record: Record, shown: Published
) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(data, annotations) of the Secret; None values delete keys in a merge patch."""
    current, pending = record.current, record.pending
    data = {
        CLIENT_ID: shown.client_id,
        SCOPE: shown.scope,
        TOKEN_URL: shown.token_url,
        API_URL: shown.api_url,
        CLIENT_SECRET: None if current is None else current.client_secret,
        API_KEY: None if current is None else current.api_key,
        PENDING_SECRET: None if pending is None else pending.client_secret,
        PENDING_KEY: None if pending is None else pending.api_key,
    }
    notes = {
        kube.ROTATED_AT: _stamp(record.rotated_at),
        kube.PREVIOUS_EXPIRES_AT: _stamp(record.previous_expires_at),
        kube.ROTATION_REQUEST: record.handled_request,
        PENDING_TRIGGER: record.pending_trigger,
        PENDING_REQUEST: record.pending_request,
    }
    return {k: kube.encode(v) for k, v in data.items()}, notes


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else kube.stamp(moment)

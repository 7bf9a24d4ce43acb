"""Status conditions, written whole on every patch (a merge patch replaces the list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SUBSCRIPTION_TYPES = ("Ready", "SecretReady", "Synced", "DeliveryHealthy")
"""A WebhookSubscription's conditions, in the order they are listed."""
CLIENT_TYPES = ("Ready", "CredentialsReady", "Synced")
"""An ApiClient's."""


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool | None
    """None: Unknown."""
    reason: str
    message: str


def _status(value: bool | None) -> str:
    return "Unknown" if value is None else ("True" if value else "False")


def merge(
    existing: list[dict[str, Any]] | None,
    changes: list[Condition],
    generation: int,
    now: datetime,
    types: tuple[str, ...] = SUBSCRIPTION_TYPES,
) -> list[dict[str, Any]]:
    """The full list of ``types``: ``changes`` applied over ``existing``; ``lastTransitionTime``
    moves only when a condition's status changes. Types not yet known are Unknown."""
    old = {c.get("type"): c for c in existing or []}
    new = {c.type: c for c in changes}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = []
    for kind in types:
        before = old.get(kind)
        if kind not in new:
            if before is not None:
                result.append(before)
                continue
            new[kind] = Condition(kind, None, "Pending", "not evaluated yet")
        condition = new[kind]
        status = _status(condition.status)
        moved = before is None or before.get("status") != status
        result.append(
            {
                "type": kind,
                "status": status,
                "reason": condition.reason,
                "message": condition.message[:1024],
                "lastTransitionTime": stamp if moved else before["lastTransitionTime"],  # type: ignore[index]
                "observedGeneration": generation,
            }
        )
    return result


def is_true(conditions: list[dict[str, Any]], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def ready(conditions: list[dict[str, Any]], suspended: bool) -> Condition:
    """A WebhookSubscription is Ready when its secret exists and the service has this very spec
    (suspended too: deliveries are held, the subscription is in place)."""
    needs = Condition("SecretReady", False, "SecretNotReady", "the signing secret is not ready")
    held = Condition("Ready", True, "Suspended", "synced; deliveries are held (suspend)")
    return _ready(conditions, suspended, needs, held, "the subscription is live in the service")


def client_ready(conditions: list[dict[str, Any]], suspended: bool) -> Condition:
    """An ApiClient is Ready when its Secret holds credentials the service takes right now (not
    when suspended: they are refused then)."""
    needs = Condition("CredentialsReady", False, "CredentialsNotReady",
                      "the credentials are not ready")  # fmt: skip
    held = Condition("Ready", False, "Suspended", "the client is disabled (suspend)")
    return _ready(conditions, suspended, needs, held, "the Secret's credentials work")


def _ready(
    conditions: list[dict[str, Any]], suspended: bool, needs: Condition, held: Condition, live: str
) -> Condition:
    """Ready from ``needs`` (its type True, else Ready False with its reason) and Synced."""
    if not is_true(conditions, needs.type):
        return Condition("Ready", False, needs.reason, needs.message)
    if not is_true(conditions, "Synced"):
        return Condition("Ready", False, "NotSynced", "the service does not have this spec yet")
    if suspended:
        return held
    return Condition("Ready", True, "Ready", live)

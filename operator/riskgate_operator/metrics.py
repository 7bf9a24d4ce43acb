"""The operator's Prometheus metrics, in a registry of its own (served on the operator port)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

# The operator is its own process: no *_created series beside each counter.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

KIND = "WebhookSubscription"

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILES = Counter(
    "riskgate_operator_reconciles_total",
    "Reconciliations by outcome (success, temporary_error, permanent_error).",
    ["kind", "result"],
    registry=REGISTRY,
)
ROTATIONS = Counter(
    "riskgate_operator_rotations_total",
    "Signing-secret rotations by trigger (schedule, annotation).",
    ["kind", "trigger"],
    registry=REGISTRY,
)
SYNC_ERRORS = Counter(
    "riskgate_operator_sync_errors_total",
    "Failed calls to the riskgate service by class (temporary, permanent).",
    ["kind", "class"],
    registry=REGISTRY,
)
NEXT_ROTATION = Gauge(
    "riskgate_operator_next_rotation_timestamp_seconds",
    "Unix time the next secret rotation of a resource is due.",
    ["namespace", "name"],
    registry=REGISTRY,
)
MANAGED = Gauge(
    "riskgate_operator_managed_resources",
    "Resources the operator currently manages.",
    ["kind"],
    registry=REGISTRY,
)

# Pre-create every bounded series, so dashboards and alerts see zeros rather than gaps.
for _result in ("success", "temporary_error", "permanent_error"):
    RECONCILES.labels(KIND, _result)
for _trigger in ("schedule", "annotation"):
    ROTATIONS.labels(KIND, _trigger)
for _class in ("temporary", "permanent"):
    SYNC_ERRORS.labels(KIND, _class)
MANAGED.labels(KIND).set(0)

_managed: set[str] = set()


def reconciled(result: str) -> None:
    RECONCILES.labels(KIND, result).inc()


def rotated(trigger: str) -> None:
    ROTATIONS.labels(KIND, trigger).inc()


def sync_failed(error_class: str) -> None:
    SYNC_ERRORS.labels(KIND, error_class).inc()


def track(uid: str, namespace: str, name: str, next_rotation: float | None) -> None:
    _managed.add(uid)
    MANAGED.labels(KIND).set(len(_managed))
    if next_rotation is None:
        _forget_rotation(namespace, name)
    else:
        NEXT_ROTATION.labels(namespace, name).set(next_rotation)


def forget(uid: str, namespace: str, name: str) -> None:
    _managed.discard(uid)
    MANAGED.labels(KIND).set(len(_managed))
    _forget_rotation(namespace, name)


def _forget_rotation(namespace: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        NEXT_ROTATION.remove(namespace, name)

"""The operator's Prometheus metrics, in a registry of its own (served on the operator port)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

# The operator is its own process: no *_created series beside each counter.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

SUBSCRIPTION, CLIENT = "WebhookSubscription", "ApiClient"
KINDS = (SUBSCRIPTION, CLIENT)

REGISTRY = CollectorRegistry(auto_describe=True)
RECONCILES = Counter(
    "riskgate_operator_reconciles_total",
    "Reconciliations by outcome (success, temporary_error, permanent_error).",
    ["kind", "result"],
    registry=REGISTRY,
)
ROTATIONS = Counter(
    "riskgate_operator_rotations_total",
    "Credential rotations (signing secrets, API client pairs) by trigger (schedule, annotation).",
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
    "Unix time the next credential rotation of a resource is due.",
    ["kind", "namespace", "name"],
    registry=REGISTRY,
)
MANAGED = Gauge(
    "riskgate_operator_managed_resources",
    "Resources the operator currently manages.",
    ["kind"],
    registry=REGISTRY,
)

# Pre-create every bounded series, so dashboards and alerts see zeros rather than gaps.
for _kind in KINDS:
    for _result in ("success", "temporary_error", "permanent_error"):
        RECONCILES.labels(_kind, _result)
    for _trigger in ("schedule", "annotation"):
        ROTATIONS.labels(_kind, _trigger)
    for _class in ("temporary", "permanent"):
        SYNC_ERRORS.labels(_kind, _class)
    MANAGED.labels(_kind).set(0)

_managed: dict[str, set[str]] = {kind: set() for kind in KINDS}


def reconciled(result: str, kind: str = SUBSCRIPTION) -> None:
    RECONCILES.labels(kind, result).inc()


def rotated(trigger: str, kind: str = SUBSCRIPTION) -> None:
    ROTATIONS.labels(kind, trigger).inc()


def sync_failed(error_class: str, kind: str = SUBSCRIPTION) -> None:
    SYNC_ERRORS.labels(kind, error_class).inc()


def track(kind: str, uid: str, namespace: str, name: str, next_rotation: float | None) -> None:
    _managed[kind].add(uid)
    MANAGED.labels(kind).set(len(_managed[kind]))
    if next_rotation is None:
        _forget_rotation(kind, namespace, name)
    else:
        NEXT_ROTATION.labels(kind, namespace, name).set(next_rotation)


def forget(kind: str, uid: str, namespace: str, name: str) -> None:
    _managed[kind].discard(uid)
    MANAGED.labels(kind).set(len(_managed[kind]))
    _forget_rotation(kind, namespace, name)


def _forget_rotation(kind: str, namespace: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        NEXT_ROTATION.remove(kind, namespace, name)

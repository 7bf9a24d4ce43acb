"""The kopf side: thin handlers around the Reconciler, kopf's settings, and the login."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import kopf

from riskgate_operator import metrics
from riskgate_operator.api import ApiError
from riskgate_operator.kube import GROUP, VERSION
from riskgate_operator.reconcile import TEMPORARY, Outcome, Resource, backoff
from riskgate_operator.settings import OperatorSettings

# Not "riskgate.io": kopf's diff-base ignores annotations under its own prefix, and
# riskgate.io/rotate-requested-at must count as a change.
KOPF_PREFIX = "kopf.riskgate.io"
FINALIZER = f"{GROUP}/finalizer"

log = logging.getLogger("riskgate_operator")


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # Events are posted on purpose (synced, rotated, refused...); of kopf's own log lines only
    # warnings and errors become Events.
    settings.posting.level = logging.WARNING
    # Scanning stays on: kopf then notices the CRD installed after the operator started (and,
    # with named namespaces, namespaces that appear later), given list/watch on both.
    settings.networking.request_timeout = 30
    # Ride out an API server outage of about ten minutes (kopf's default gives up after ~90 s).
    settings.networking.error_backoffs = [1, 2, 4, 8, 16] + [30] * 20
    settings.watching.server_timeout = 300


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod the service account; elsewhere KUBECONFIG or ~/.kube/config."""
    if os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists():
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_with_service_account(**kwargs)


def _post(body: Any, outcome_events: list[Any]) -> None:
    for event in outcome_events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


class Reconciles(Protocol):
    """A kind's reconciler: plain async functions of the resource."""

    async def reconcile(self, res: Resource) -> Outcome: ...

    async def delete(self, res: Resource) -> bool: ...


@dataclass(frozen=True, slots=True)
class Watched:
    kind: str
    plural: str
    reconciler: Reconciles
    removed: str
    """The Event's message once the service no longer has it."""


def build_registry(settings: OperatorSettings, *watched: Watched) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # One lock per resource (uids are unique across kinds): never two rounds of one at once.
    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    kopf.on.login(registry=registry)(login)
    for one in watched:
        _watch(registry, settings, one, locks)
    return registry


def _watch(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    watched: Watched,
    locks: defaultdict[str, asyncio.Lock],
) -> None:
    """Resume/create/update, a timer and delete for one kind, around its reconciler."""
    resource, kind, reconciler = (GROUP, VERSION, watched.plural), watched.kind, watched.reconciler

    async def reconcile(body: Any, patch: kopf.Patch, retry: int) -> None:
        res = Resource.of(body)
        try:
            async with locks[res.uid]:
                outcome = await reconciler.reconcile(res)
        except Exception as exc:
            # Anything unforeseen (the Kubernetes API away, a 5xx from it): temporary, with the
            # same capped backoff rather than kopf's fixed 60 s.
            log.exception("reconciling %s %s/%s failed", kind, res.namespace, res.name)
            metrics.reconciled(TEMPORARY, kind)
            raise kopf.TemporaryError(repr(exc), delay=backoff(retry)) from exc
        patch.status.update(outcome.status)
        _post(body, outcome.events)
        next_due = outcome.next_rotation.timestamp() if outcome.next_rotation else None
        metrics.track(kind, res.uid, res.namespace, res.name, next_due)
        if outcome.result is not None:
            metrics.reconciled(outcome.result, kind)
        if outcome.error_class is not None:
            metrics.sync_failed(outcome.error_class, kind)
        if outcome.result == TEMPORARY:
            raise kopf.TemporaryError(outcome.message, delay=backoff(retry, outcome.retry_after))

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    async def apply(body: Any, patch: kopf.Patch, retry: int, **_: Any) -> None:
        """Create, change (also a rotation request) and operator start: one reconciliation."""
        await reconcile(body, patch, retry)

    @kopf.timer(*resource, interval=settings.rotation_check_seconds, registry=registry)
    async def check(body: Any, patch: kopf.Patch, **kwargs: Any) -> None:
        """Rotation due, overlap over, drift, delivery health: re-checked on a timer."""
        if body.get("metadata", {}).get("deletionTimestamp"):
            return
        await reconcile(body, patch, int(kwargs.get("retry") or 0))

    @kopf.on.delete(*resource, registry=registry)
    async def remove(body: Any, retry: int, **_: Any) -> None:
        """The finalizer holds the resource until the service no longer has it."""
        res = Resource.of(body)
        try:
            async with locks[res.uid]:
                await reconciler.delete(res)
        except ApiError as exc:
            metrics.sync_failed(exc.error_class, kind)
            if exc.temporary:
                metrics.reconciled(TEMPORARY, kind)
                message = f"deleting from riskgate: {exc.message}; retrying"
                kopf.event(body, type="Warning", reason="DeleteFailed", message=message)
                raise kopf.TemporaryError(message, delay=backoff(retry, exc.retry_after)) from None
            # Another client syncs it: it was never ours to delete. Say so, then let go.
            kopf.event(body, type="Warning", reason="DeleteRefused", message=exc.message)
        locks.pop(res.uid, None)
        metrics.forget(kind, res.uid, res.namespace, res.name)
        metrics.reconciled("success", kind)
        kopf.event(body, type="Normal", reason="Deleted", message=watched.removed)

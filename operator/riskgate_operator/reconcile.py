"""One reconciliation of a WebhookSubscription: its signing secret, the service's copy of the
spec, and the delivery health read back, turned into the resource's full status.

Plain async code over two small clients (the service and Kubernetes Secrets), so the kopf
handlers stay thin and every decision here is a function of what was read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from riskgate_operator import conditions, kube, metrics, schedule
from riskgate_operator.api import ApiError, RiskgateApi
from riskgate_operator.conditions import Condition
from riskgate_operator.schedule import Rotation, SecretState, Step

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 120.0
SUCCESS, TEMPORARY, PERMANENT = "success", "temporary_error", "permanent_error"


def backoff(retry: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``retry`` (0 first): doubling from 1 s up to 120 s, then
    jittered down to half of it so many resources failing together do not retry together; never
    sooner than the service's ``Retry-After``."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(retry, 16))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Resource:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    annotations: dict[str, str]
    status: dict[str, Any]
    kind: str = kube.KIND

    @classmethod
    def of(cls, body: Any) -> Resource:
        meta = body["metadata"]
        return cls(
            kind=str(body.get("kind") or kube.KIND),
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 1),
            spec=dict(body.get("spec") or {}),
            annotations=dict(meta.get("annotations") or {}),
            status=dict(body.get("status") or {}),
        )

    @property
    def owner(self) -> kube.Owner:
        return kube.Owner(self.namespace, self.name, self.uid, self.kind)

    @property
    def rotation_requested(self) -> str | None:
        """The ``riskgate.io/rotate-requested-at`` annotation's value (None when absent)."""
        return self.annotations.get(kube.ROTATE_REQUESTED_AT) or None


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    """``Normal`` or ``Warning``."""
    reason: str
    message: str


@dataclass
class Outcome:
    status: dict[str, Any]
    result: str | None
    """success / temporary_error / permanent_error; None when nothing was attempted."""
    events: list[Event] = field(default_factory=list)
    message: str = ""
    retry_after: float | None = None
    next_rotation: datetime | None = None
    error_class: str | None = None
    """``temporary`` or ``permanent`` when a call to the service failed."""


class Problem(Exception):
    """Something in Kubernetes is not as the spec needs it (yet): a condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SecretProblem(Problem):
    """The Secret to sign with (or to hold credentials) is missing, invalid or not ours."""


class ClientsUnresolved(Problem):
    """An ApiClient named in spec.apiClients does not exist or has no client yet."""


class SyncMemory:
    """What the service has for each resource (by uid) and what it refused: in memory, so
    after a restart every resource is synced once more (the PUTs are idempotent)."""

    def __init__(self) -> None:
        self._synced: dict[str, str] = {}
        self._refused: dict[str, tuple[str, Condition]] = {}

    def refusal(self, uid: str, wanted: str) -> Condition | None:
        """The condition of this very spec's refusal, if the service refused it."""
        refused = self._refused.get(uid)
        return refused[1] if refused is not None and refused[0] == wanted else None

    def has(self, uid: str, wanted: str) -> bool:
        return self._synced.get(uid) == wanted

    def synced(self, uid: str, wanted: str) -> None:
        self._synced[uid] = wanted
        self._refused.pop(uid, None)

    def failed(
        self, uid: str, wanted: str, exc: ApiError, outcome: Outcome, changes: list[Condition]
    ) -> None:
        """A failed call: temporary (retried with backoff), or a refusal, permanent until the
        spec changes (its event posted once)."""
        outcome.message, outcome.retry_after = exc.message, exc.retry_after
        outcome.error_class = exc.error_class
        known = self.refusal(uid, wanted)
        if exc.temporary:
            outcome.result = TEMPORARY
            changes.append(Condition("Synced", False, exc.reason, exc.message))
            outcome.events.append(Event("Warning", "SyncFailed", exc.message))
        elif known is None:
            condition = Condition("Synced", False, exc.reason, exc.message)
            self._refused[uid] = (wanted, condition)
            outcome.result = PERMANENT
            changes.append(condition)
            outcome.events.append(Event("Warning", "SyncRefused", exc.message))
        else:
            changes.append(known)

    def forget(self, uid: str) -> None:
        self._synced.pop(uid, None)
        self._refused.pop(uid, None)


def settle(
    res: Resource,
    outcome: Outcome,
    changes: list[Condition],
    now: datetime,
    kind: tuple[tuple[str, ...], Callable[[list[dict[str, Any]], bool], Condition]],
) -> None:
    """The resource's whole conditions list into the outcome's status: ``changes`` over its
    status, then Ready; ``kind``: its condition types and its Ready rule."""
    types, ready = kind
    merged = conditions.merge(res.status.get("conditions"), changes, res.generation, now, types)
    suspended = bool(res.spec.get("suspend", False))
    merged = conditions.merge(merged, [ready(merged, suspended)], res.generation, now, types)
    outcome.status.update(conditions=merged, observedGeneration=res.generation)


@dataclass(frozen=True, slots=True)
class Signing:
    """The live secrets and what the status says about them."""

    secrets: list[tuple[str, datetime | None]]
    secret_name: str
    rotated_at: datetime | None = None
    next_rotation: datetime | None = None
    previous_expires_at: datetime | None = None


def valid_secret(value: str) -> bool:
    if not value.startswith(schedule.SECRET_PREFIX):
        return False
    try:
        raw = base64.b64decode(value[len(schedule.SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 24


def sync_body(spec: dict[str, Any], signing: Signing, clients: list[str]) -> dict[str, Any]:
    """The service's view of the spec (PUT /v1/webhooks/managed-subscriptions/...), with
    ``clients`` the client ids of spec.clients and of the ApiClients spec.apiClients names."""
    return {
        "url": spec["url"],
        "event_types": sorted(set(spec["eventTypes"])),
        "clients": sorted(set(clients)),
        "actions": sorted(set(spec.get("actions") or [])),
        "paused": bool(spec.get("suspend", False)),
        "secrets": [{"value": v, "expires_at": stamp(e)} for v, e in signing.secrets],
    }


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def delivery_condition(found: dict[str, Any]) -> Condition:
    health = found.get("health") or {}
    if found.get("status") == "disabled":
        why = found.get("disabled_reason") or "manual"
        text = {
            "gone": "the receiver answered 410 Gone",
            "failing": "deliveries failed for too long",
        }.get(why, "disabled in the service")
        return Condition("DeliveryHealthy", False, f"Disabled{why.capitalize()}", text)
    if health.get("failing_since"):
        return Condition(
            "DeliveryHealthy", False, "Failing", f"failing since {health['failing_since']}"
        )
    if not health.get("last_success_at"):
        return Condition("DeliveryHealthy", True, "NoDeliveriesYet", "nothing delivered yet")
    return Condition(
        "DeliveryHealthy", True, "Delivering", f"last success {health['last_success_at']}"
    )


def delivery_status(found: dict[str, Any]) -> dict[str, Any]:
    health = found.get("health") or {}
    return {
        "state": found.get("status"),
        "disabledReason": found.get("disabled_reason"),
        "lastSuccessTime": health.get("last_success_at"),
        "failingSince": health.get("failing_since"),
        "recentAttempts": health.get("recent_attempts"),
        "recentSuccessRatio": health.get("recent_success_ratio"),
        "deadLetters": health.get("dead_letters"),
    }


class Reconciler:
    def __init__(
        self,
        api: RiskgateApi,
        secrets: kube.SecretsApi,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.secrets = secrets
        self._clock = clock
        self._memory = SyncMemory()

    def forget(self, uid: str) -> None:
        self._memory.forget(uid)

    # --- the signing secret ----------------------------------------------------------------

    async def _signing(self, res: Resource, now: datetime, events: list[Event]) -> Signing:
        rotation = schedule.rotation_of(res.spec)
        if rotation is None:
            return await self._brought(res)
        for _ in range(3):  # a concurrent change of the Secret: read it again and re-plan
            try:
                return await self._owned(res, rotation, now, events)
            except kube.Conflict:
                continue
        raise SecretProblem("SecretConflict", "the Secret keeps changing under the operator")

    async def _brought(self, res: Resource) -> Signing:
        ref = res.spec["secretRef"]
        name, key = ref["name"], ref.get("key", kube.CURRENT_KEY)
        found = await self.secrets.get(res.namespace, name)
        if found is None:
            raise SecretProblem("SecretNotFound", f"Secret {name} does not exist (yet)")
        encoded = (found.get("data") or {}).get(key)
        value = None if encoded is None else base64.b64decode(encoded).decode(errors="replace")
        if value is None or not valid_secret(value):
            raise SecretProblem(
                "SecretInvalid",
                f"Secret {name} key {key} must hold whsec_ + base64 of at least 24 bytes",
            )
        return Signing([(value, None)], name)

    async def _owned(
        self, res: Resource, rotation: Rotation, now: datetime, events: list[Event]
    ) -> Signing:
        name = kube.owned_secret_name(res.name)
        found = await self.secrets.get(res.namespace, name)
        if found is not None and not kube.owned_by(found, res.uid):
            raise SecretProblem(
                "SecretConflict", f"Secret {name} exists and is not owned by this resource"
            )
        state = None if found is None else kube.state_of(found)
        requested = res.rotation_requested
        step = schedule.plan(state, rotation, requested, now)
        new = schedule.apply(step.step, state, rotation, requested, now)
        if found is None:
            assert new is not None
            await self.secrets.create(kube.owned_secret(res.owner, new))
        elif new is not None:
            version = found["metadata"]["resourceVersion"]
            await self.secrets.patch(res.namespace, name, kube.state_patch(new, version))
        if step.trigger is not None:
            metrics.rotated(step.trigger)
        final = new or state
        assert final is not None
        events.extend(_secret_events(step, final, name))
        return _signing_of(final, rotation, name, now, step)

    # --- one reconciliation -----------------------------------------------------------------

    async def reconcile(self, res: Resource) -> Outcome:
        now = self._clock()
        events: list[Event] = []
        changes: list[Condition] = []
        outcome = Outcome(status={}, result=SUCCESS, events=events)
        try:
            signing = await self._signing(res, now, events)
        except SecretProblem as exc:
            changes.append(Condition("SecretReady", False, exc.reason, exc.message))
            events.append(Event("Warning", exc.reason, exc.message))
            outcome.result, outcome.message = TEMPORARY, exc.message
            return self._finish(res, outcome, changes, now, None)
        changes.append(Condition("SecretReady", True, "SecretReady", _secret_message(signing)))
        outcome.next_rotation = signing.next_rotation
        try:
            clients = await self._clients(res)
        except ClientsUnresolved as exc:
            changes.append(Condition("Synced", False, exc.reason, exc.message))
            events.append(Event("Warning", exc.reason, exc.message))
            outcome.result, outcome.message = TEMPORARY, exc.message
            return self._finish(res, outcome, changes, now, signing)
        found = await self._sync(res, signing, clients, outcome, changes)
        if found is not None:
            changes.append(delivery_condition(found))
            outcome.status["delivery"] = delivery_status(found)
            outcome.status["subscriptionId"] = found.get("id")
        return self._finish(res, outcome, changes, now, signing)

    async def _clients(self, res: Resource) -> list[str]:
        """spec.clients and the client ids of the ApiClients named in spec.apiClients."""
        ids = list(res.spec.get("clients") or [])
        for name in res.spec.get("apiClients") or []:
            found = await self.secrets.api_client(res.namespace, name)
            if found is None:
                raise ClientsUnresolved("ApiClientNotFound", f"ApiClient {name} does not exist")
            status = found.get("status") or {}
            if not status.get("clientId") or not conditions.is_true(
                status.get("conditions") or [], "Synced"
            ):
                text = f"ApiClient {name} has no client in riskgate yet"
                raise ClientsUnresolved("ApiClientNotReady", text)
            ids.append(str(status["clientId"]))
        return ids

    async def _sync(
        self,
        res: Resource,
        signing: Signing,
        clients: list[str],
        outcome: Outcome,
        changes: list[Condition],
    ) -> dict[str, Any] | None:
        """Bring the service's copy up to date; its representation with delivery health."""
        body = sync_body(res.spec, signing, clients)
        wanted = fingerprint(body)
        try:
            refused = self._memory.refusal(res.uid, wanted)
            if refused is not None:
                # Refused before: nothing to try until the spec changes. The condition is said
                # again, as this reconciliation may have started from an older status.
                outcome.result = None
                changes.append(refused)
                return await self.api.get(res.namespace, res.name)
            if self._memory.has(res.uid, wanted):
                found = await self.api.get(res.namespace, res.name)
                if found is not None:
                    changes.append(Condition("Synced", True, "Synced", "the service has this spec"))
                    return found
            await self.api.sync(res.namespace, res.name, body)
            self._memory.synced(res.uid, wanted)
            changes.append(Condition("Synced", True, "Synced", "the service has this spec"))
            outcome.events.append(Event("Normal", "Synced", "subscription synced to riskgate"))
            return await self.api.get(res.namespace, res.name)
        except ApiError as exc:
            self._memory.failed(res.uid, wanted, exc, outcome, changes)
            return None

    def _finish(
        self,
        res: Resource,
        outcome: Outcome,
        changes: list[Condition],
        now: datetime,
        signing: Signing | None,
    ) -> Outcome:
        settle(res, outcome, changes, now, (conditions.SUBSCRIPTION_TYPES, conditions.ready))
        if signing is not None:
            outcome.status.update(
                secretName=signing.secret_name,
                lastRotationTime=stamp(signing.rotated_at),
                nextRotationTime=stamp(signing.next_rotation),
                previousSecretExpiresAt=stamp(signing.previous_expires_at),
            )
        return outcome

    async def delete(self, res: Resource) -> bool:
        """Remove the service's subscription; False when it had none. Raises ApiError."""
        gone = await self.api.delete(res.namespace, res.name)
        self.forget(res.uid)
        return gone


def _signing_of(
    state: SecretState, rotation: Rotation, name: str, now: datetime, step: schedule.Plan
) -> Signing:
    live: list[tuple[str, datetime | None]] = [(state.current, None)]
    expires = state.previous_expires_at
    if state.previous is not None and expires is not None and expires > now:
        live.append((state.previous, expires))
    else:
        expires = None
    return Signing(
        live,
        name,
        rotated_at=state.rotated_at,
        next_rotation=schedule.next_rotation(state, rotation),
        previous_expires_at=expires,
    )


def _secret_events(step: schedule.Plan, state: SecretState, name: str) -> list[Event]:
    if step.step is Step.CREATE:
        return [Event("Normal", "SecretCreated", f"created signing Secret {name}")]
    if step.step is Step.ROTATE:
        until = stamp(state.previous_expires_at)
        text = f"rotated ({step.trigger}); the previous secret keeps signing until {until}"
        return [Event("Normal", "SecretRotated", text)]
    if step.step is Step.DROP_PREVIOUS:
        return [Event("Normal", "PreviousSecretDropped", "the overlap ended; one secret signs")]
    return []


def _secret_message(signing: Signing) -> str:
    if signing.previous_expires_at is not None:
        until = stamp(signing.previous_expires_at)
        return f"Secret {signing.secret_name}: two secrets sign until {until}"
    return f"Secret {signing.secret_name}: one secret signs"

"""One reconciliation of an ApiClient: its Secret (the record of its credentials), the service's
client made to match the spec, the credentials issued, rotated or healed, and the full status.

Every step can be repeated after a crash or a lost answer (see ``credentials``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from riskgate_operator import conditions, kube, metrics, schedule
from riskgate_operator import credentials as creds
from riskgate_operator.api import ApiError, RiskgateApi
from riskgate_operator.conditions import Condition
from riskgate_operator.credentials import Published, Record
from riskgate_operator.reconcile import (
    SUCCESS,
    TEMPORARY,
    Event,
    Outcome,
    Resource,
    SecretProblem,
    SyncMemory,
    fingerprint,
    settle,
    stamp,
)

KIND = metrics.CLIENT


class PairTaken(Exception):
    """The service refuses to create the client with the Secret's pair (it had it before, e.g.
    the client was deleted there): a fresh pair is needed."""


class ClientReconciler:
    def __init__(
        self,
        api: RiskgateApi,
        kube_api: kube.SecretsApi,
        workload_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.kube = kube_api
        self._workload_url = workload_url
        self._clock = clock
        self._memory = SyncMemory()

    async def reconcile(self, res: Resource) -> Outcome:
        now = self._clock()
        outcome = Outcome(status={}, result=SUCCESS)
        changes: list[Condition] = []
        record: Record | None = None
        try:
            found, record = await self._secret(res)
            found, record = await self._plan_rotation(res, found, record, now)
            try:
                synced = await self._sync(res, record, outcome, changes)
            except PairTaken:
                found, record = await self._reissue(res, found, record, outcome)
                synced = await self._sync(res, record, outcome, changes)
            if synced is not None:
                view, created = synced
                outcome.status["clientId"] = view.get("client_id")
                record = await self._credentials(res, found, record, created, view, now, outcome)
        except (SecretProblem, kube.Conflict) as exc:
            reason, message = _secret_trouble(exc)
            changes.append(Condition("CredentialsReady", False, reason, message))
            outcome.events.append(Event("Warning", reason, message))
            outcome.result, outcome.message = TEMPORARY, message
            record = None
        except ApiError as exc:
            # The rotation did not complete: the pending pair is proposed again next time.
            outcome.result, outcome.message = TEMPORARY, exc.message
            outcome.retry_after, outcome.error_class = exc.retry_after, exc.error_class
            outcome.events.append(Event("Warning", "RotationFailed", exc.message))
        if record is not None:
            name = creds.secret_name(res.name, res.spec)
            changes.append(_credentials_condition(record, name, now))
            outcome.next_rotation = _next_rotation(res, record)
            outcome.status.update(_record_status(res, record, outcome.next_rotation, now))
        settle(res, outcome, changes, now, (conditions.CLIENT_TYPES, conditions.client_ready))
        return outcome

    # --- the Secret -------------------------------------------------------------------------

    def _shown(self, res: Resource) -> Published:
        return creds.published(res.namespace, res.name, res.spec, self._workload_url)

    async def _secret(self, res: Resource) -> tuple[dict[str, Any], Record]:
        """The Secret and its record; created (with a pending pair) when there is none."""
        name = creds.secret_name(res.name, res.spec)
        found = await self.kube.get(res.namespace, name)
        if found is None:
            record = creds.first(res.rotation_requested)
            data, notes = creds.secret_fields(record, self._shown(res))
            return await self.kube.create(kube.new_secret(res.owner, name, data, notes)), record
        if not kube.owned_by(found, res.uid):
            raise SecretProblem(
                "SecretConflict", f"Secret {name} exists and is not owned by this ApiClient"
            )
        record = creds.record_of(found)
        if creds.published_of(found) != self._shown(res):  # e.g. the scopes changed
            found = await self._write(res, found, record)
        return found, record

    async def _plan_rotation(
        self, res: Resource, found: dict[str, Any], record: Record, now: datetime
    ) -> tuple[dict[str, Any], Record]:
        """A rotation due is written down first, as a pending pair: proposed to the service
        below, or on a later round if it cannot be reached now."""
        requested = res.rotation_requested
        rotation = _rotation(res)
        trigger = creds.rotation_due(record, rotation, requested, now)
        if trigger is None:
            return found, record
        record = creds.proposed(record, trigger, requested)
        return await self._write(res, found, record), record

    async def _reissue(
        self, res: Resource, found: dict[str, Any], record: Record, outcome: Outcome
    ) -> tuple[dict[str, Any], Record]:
        """A fresh pair written down as pending, for the PUT that recreates the client."""
        requested = res.rotation_requested
        record = creds.proposed(record, creds.HEAL, requested)
        text = "riskgate had no client for this ApiClient; recreating it with a new pair"
        outcome.events.append(Event("Warning", "ClientRecreated", text))
        return await self._write(res, found, record), record

    async def _write(self, res: Resource, found: dict[str, Any], record: Record) -> dict[str, Any]:
        """The whole record in one update, only over the version read."""
        data, notes = creds.secret_fields(record, self._shown(res))
        patch = kube.merge_patch(data, notes, found["metadata"]["resourceVersion"])
        return await self.kube.patch(res.namespace, found["metadata"]["name"], patch)

    # --- the service's client ---------------------------------------------------------------

    async def _sync(
        self, res: Resource, record: Record, outcome: Outcome, changes: list[Condition]
    ) -> tuple[dict[str, Any], bool] | None:
        """(the service's view of the client, True when this call created it); None when the
        service refused the spec or could not be reached."""
        body = creds.spec_body(res.spec)
        wanted = fingerprint(body)
        refused = self._memory.refusal(res.uid, wanted)
        if refused is not None:
            outcome.result = None  # nothing to try until the spec changes
            changes.append(refused)
            return None
        try:
            if self._memory.has(res.uid, wanted):
                view = await self.api.get_client(res.namespace, res.name)
                if view is not None:
                    changes.append(Condition("Synced", True, "Synced", "the service has this spec"))
                    return view, False
            body["credentials"] = creds.proposal(record)
            view, created = await self.api.apply_client(res.namespace, res.name, body)
        except ApiError as exc:
            if exc.reason == "CredentialsConflict" and record.pending is None:
                raise PairTaken from None
            self._memory.failed(res.uid, wanted, exc, outcome, changes)
            return None
        self._memory.synced(res.uid, wanted)
        changes.append(Condition("Synced", True, "Synced", "the service has this spec"))
        outcome.events.append(Event("Normal", "Synced", "client synced to riskgate"))
        return view, created

    # --- the credentials --------------------------------------------------------------------

    async def _credentials(
        self,
        res: Resource,
        found: dict[str, Any],
        record: Record,
        created: bool,
        view: dict[str, Any],
        now: datetime,
        outcome: Outcome,
    ) -> Record:
        """Issue, rotate or heal as due; the record as the Secret now holds it."""
        if created and record.pending is None:
            text = "riskgate had no client for this ApiClient; recreated it with the Secret's pair"
            outcome.events.append(Event("Warning", "ClientRecreated", text))
            return record
        if created:  # the service took the pending pair as the client's first
            issued = creds.promoted(record, now, None)
            await self._write(res, found, issued)
            outcome.events.append(Event("Normal", "CredentialsIssued", "credentials issued"))
            return issued
        rotation = _rotation(res)
        if creds.needs_heal(record, view):
            if record.current is not None:
                text = "riskgate no longer takes the Secret's credentials; issuing a new pair"
                outcome.events.append(Event("Warning", "CredentialsHealed", text))
            requested = res.rotation_requested
            record = creds.proposed(record, creds.HEAL, requested)
            found = await self._write(res, found, record)
        if record.pending is None:
            return record
        return await self._rotate(res, found, record, rotation, now, outcome)

    async def _rotate(
        self,
        res: Resource,
        found: dict[str, Any],
        record: Record,
        rotation: schedule.Rotation,
        now: datetime,
        outcome: Outcome,
    ) -> Record:
        """Propose the pending pair to the service, then promote it."""
        body = creds.rotate_body(record, creds.overlap_of(record, rotation))
        answer = await self.api.rotate_client(res.namespace, res.name, body)
        until = kube.moment(answer.get("previous_credentials_expire_at"))
        trigger = record.pending_trigger
        done = creds.promoted(record, now, until)
        await self._write(res, found, done)
        if trigger in ("schedule", "annotation"):
            metrics.rotated(trigger, KIND)
            text = f"credentials rotated ({trigger}); the previous pair works until {stamp(until)}"
            outcome.events.append(Event("Normal", "CredentialsRotated", text))
        else:
            outcome.events.append(Event("Normal", "CredentialsIssued", "credentials issued"))
        return done

    async def delete(self, res: Resource) -> bool:
        """Remove the service's client; False when it had none. Raises ApiError."""
        gone = await self.api.delete_client(res.namespace, res.name)
        self._memory.forget(res.uid)
        return gone


def _rotation(res: Resource) -> schedule.Rotation:
    return schedule.policy_of(res.spec.get("credentialRotation"))


def _next_rotation(res: Resource, record: Record) -> datetime | None:
    every = _rotation(res).every
    return None if record.rotated_at is None else record.rotated_at + every


def _record_status(
    res: Resource, record: Record, next_rotation: datetime | None, now: datetime
) -> dict[str, Any]:
    return {
        "secretName": creds.secret_name(res.name, res.spec),
        "lastRotationTime": stamp(record.rotated_at),
        "nextRotationTime": stamp(next_rotation),
        "previousCredentialsExpireAt": stamp(_overlap_end(record, now)),
    }


def _overlap_end(record: Record, now: datetime) -> datetime | None:
    until = record.previous_expires_at
    return until if schedule.overlapping(until, now) else None


def _secret_trouble(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, SecretProblem):
        return exc.reason, exc.message
    return "SecretConflict", "the Secret changed under the operator; reading it again"


def _credentials_condition(record: Record | None, name: str, now: datetime) -> Condition:
    if record is None or record.current is None:
        return Condition("CredentialsReady", False, "CredentialsPending",
                         f"Secret {name} holds no working credentials yet")  # fmt: skip
    if record.pending is not None:
        text = f"Secret {name}: its credentials work; a new pair waits for the service"
        return Condition("CredentialsReady", True, "RotationPending", text)
    until = _overlap_end(record, now)
    if until is not None:
        text = f"Secret {name}: the previous pair also works until {stamp(until)}"
        return Condition("CredentialsReady", True, "CredentialsReady", text)
    return Condition("CredentialsReady", True, "CredentialsReady", f"Secret {name}: one pair works")

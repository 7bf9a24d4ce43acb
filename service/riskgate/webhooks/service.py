"""Webhook subscriptions and deliveries as the API offers them (no SQL, no HTTP types here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
import uuid_utils.compat as uuid7

from riskgate.db import Pool
from riskgate.errors import (
    Conflict,
    DeliveryAlreadyQueued,
    InvalidField,
    ManagedSubscriptionOwnedElsewhere,
    SubscriptionManagedExternally,
    WebhookDeliveryNotFound,
    WebhookSubscriptionNotFound,
    WebhookTargetRefused,
)
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.idempotency.service import resolve_existing
from riskgate.observability.metrics import record_idempotency
from riskgate.webhooks import repository, ssrf
from riskgate.webhooks.crypto import KeyRing, Sealed
from riskgate.webhooks.schemas import (
    Delivery,
    DeliveryPage,
    FieldInvalid,
    ManagedSubscription,
    ManagedSubscriptionSync,
    RecoverRequest,
    SealedSecret,
    SecretRotated,
    Subscription,
    SubscriptionCreate,
    SubscriptionPage,
    SubscriptionSpec,
    SubscriptionUpdate,
    SubscriptionWithSecret,
    TestRequest,
    TestSent,
    WebhookUrl,
    check_update,
    message_id,
)
from riskgate.webhooks.signing import InvalidSecret, new_secret, secret_key_bytes

ROUTE_SUBSCRIPTIONS = "/v1/webhooks/subscriptions"
ROUTE_DELIVERIES = "/v1/webhooks/deliveries"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who calls, as the service needs it (the HTTP layer builds it from the credential)."""

    client_id: UUID
    name: str
    audit_name: str


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    subscription_id: UUID | None = None
    status: str | None = None
    event_type: str | None = None
    event_ref: UUID | None = None


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""Headers of every response that carries a signing secret: no cache or proxy may keep it."""


def _spec(
    url: str, event_types: list[str], actions: Sequence[str] | None, paused: bool
) -> SubscriptionSpec:
    types = sorted(set(event_types))
    if actions and "decision.created" not in types:
        raise InvalidField("actions filter decision.created events only", field="actions")
    return SubscriptionSpec(
        _lowercase_scheme(url), types, sorted(set(actions)) if actions else None, paused
    )


def _lowercase_scheme(url: str) -> str:
    """``HTTPS://x`` is ``https://x`` (RFC 3986 3.1): stored in the canonical form, which is
    also the only one the table's CHECK accepts."""
    scheme, sep, rest = url.partition("://")
    return scheme.lower() + sep + rest


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


class WebhookService:
    def __init__(
        self,
        pool: Pool,
        keys: KeyRing,
        *,
        ttl_seconds: int,
        retry_after: int,
        allow_private: bool,
        default_overlap_seconds: int,
    ) -> None:
        self._pool = pool
        self._keys = keys
        self._ttl = ttl_seconds
        self._retry_after = retry_after
        self._allow_private = allow_private
        self._overlap = default_overlap_seconds

    # --- helpers -------------------------------------------------------------------------

    async def _check_url(self, url: str) -> None:
        try:
            await ssrf.check_url(url, allow_private=self._allow_private)
        except ssrf.TargetRefused as exc:
            raise WebhookTargetRefused(exc.detail, field="url") from None

    def _seal_secret(self, secret: str, bound_to: UUID) -> SealedSecret:
        sealed = self._keys.seal(secret.encode(), bound_to.bytes)
        return SealedSecret(sealed.key_id, sealed.blob)

    @staticmethod
    def _binding(ticket: IdempotencyTicket) -> bytes:
        return b"idempotent-response:" + ticket.client_id.bytes + ticket.key.encode()

    def _stored(
        self, ticket: IdempotencyTicket, status: int, location: str, body: msgspec.Struct
    ) -> tuple[StoredResponse, StoredResponse]:
        """(what this request answers, what is kept for replays: the body sealed, as it
        carries a signing secret)."""
        plain = msgspec.json.encode(body)
        headers = {"Location": location, **NO_STORE}
        sealed = self._keys.seal_packed(plain, self._binding(ticket))
        return StoredResponse(status, headers, plain), StoredResponse(status, headers, sealed)

    async def replay_stored(self, ticket: IdempotencyTicket) -> StoredResponse:
        """The idempotency key's stored answer, unsealed (it carries a signing secret)."""
        stored = await resolve_existing(self._pool, ticket, self._retry_after)
        body = self._keys.open_packed(stored.body, self._binding(ticket))
        # Merged, not only stored: records kept before the header was added replay with it too.
        return StoredResponse(stored.status, {**stored.headers, **NO_STORE}, body)

    async def _visible(self, subscription_id: UUID, actor: Actor) -> tuple[Subscription, bool]:
        found = await repository.get_subscription(self._pool, subscription_id, actor.client_id)
        if found is None:
            raise WebhookSubscriptionNotFound(f"no webhook subscription {subscription_id}")
        return found

    async def _managed_here(self, subscription_id: UUID, actor: Actor) -> Subscription:
        """The subscription, if the caller may change it over REST (else 404 or 409)."""
        subscription, owned = await self._visible(subscription_id, actor)
        if subscription.managed_by != "api":
            raise SubscriptionManagedExternally(
                f"subscription {subscription_id} is managed by the Kubernetes resource "
                f"{subscription.managed_ref}; change that resource instead"
            )
        if not owned:
            raise WebhookSubscriptionNotFound(f"no webhook subscription {subscription_id}")
        return subscription

    # --- subscriptions -------------------------------------------------------------------

    async def create(
        self, ticket: IdempotencyTicket, body: SubscriptionCreate, actor: Actor
    ) -> tuple[StoredResponse, bool]:
        spec = _spec(body.url, list(body.event_types), body.actions, body.paused)
        await self._check_url(spec.url)
        subscription_id = uuid7.uuid7()
        secret = new_secret()
        sealed = self._seal_secret(secret, subscription_id)
        now = datetime.now(UTC)
        response = SubscriptionWithSecret(
            id=subscription_id,
            url=spec.url,
            event_types=spec.event_types,  # type: ignore[arg-type]
            actions=spec.actions or [],  # type: ignore[arg-type]
            paused=spec.paused,
            status="active",
            disabled_reason=None,
            failing_since=None,
            managed_by="api",
            managed_ref=None,
            clients=[actor.name],
            previous_secret_expires_at=None,
            created_at=now,
            updated_at=now,
            secret=secret,
        )
        answer, kept = self._stored(
            ticket, 201, f"{ROUTE_SUBSCRIPTIONS}/{subscription_id}", response
        )
        audit = {
            "host": _host(spec.url),
            "event_types": spec.event_types,
            "actions": spec.actions,
            "paused": spec.paused,
        }
        won = await repository.create_subscription(
            self._pool,
            ticket,
            kept,
            self._ttl,
            subscription_id,
            spec,
            sealed,
            actor.audit_name,
            audit,
            now,
        )
        if won:
            record_idempotency("new")
            return answer, False
        return await self.replay_stored(ticket), True

    async def get(self, subscription_id: UUID, actor: Actor) -> Subscription:
        return (await self._visible(subscription_id, actor))[0]

    async def list_subscriptions(
        self, actor: Actor, before: UUID | None, limit: int
    ) -> SubscriptionPage:
        rows = await repository.list_subscriptions(self._pool, actor.client_id, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return SubscriptionPage(data=rows, next_cursor=str(rows[-1].id) if more else None)

    async def update(
        self, subscription_id: UUID, patch: SubscriptionUpdate, actor: Actor
    ) -> Subscription:
        try:
            check_update(patch)
        except FieldInvalid as exc:
            raise InvalidField(exc.detail.split(" - at ")[0], field=exc.field) from None
        current = await self._managed_here(subscription_id, actor)
        changes = {
            f: getattr(patch, f)
            for f in patch.__struct_fields__
            if getattr(patch, f) is not msgspec.UNSET
        }
        types = changes.get("event_types", current.event_types)
        actions = changes.get("actions", current.actions)
        spec = _spec(changes.get("url", current.url), list(types), actions, current.paused)
        if "event_types" in changes:
            changes["event_types"] = spec.event_types
        if "actions" in changes:
            changes["actions"] = spec.actions
        if "url" in changes:
            await self._check_url(spec.url)
        async with self._pool.acquire() as conn, conn.transaction():
            if not await repository.update_subscription(
                conn, subscription_id, actor.client_id, changes, "api", actor.audit_name
            ):
                raise WebhookSubscriptionNotFound(f"no webhook subscription {subscription_id}")
            if "paused" in changes or "status" in changes:
                await repository.apply_queue_state(conn, subscription_id)
        return await self.get(subscription_id, actor)

    async def delete(self, subscription_id: UUID, actor: Actor) -> None:
        await self._managed_here(subscription_id, actor)
        if not await repository.delete_subscription(
            self._pool, subscription_id, actor.client_id, "api", actor.audit_name
        ):
            raise WebhookSubscriptionNotFound(f"no webhook subscription {subscription_id}")

    async def rotate_secret(
        self,
        ticket: IdempotencyTicket,
        subscription_id: UUID,
        overlap_seconds: int | None,
        actor: Actor,
    ) -> tuple[StoredResponse, bool]:
        await self._managed_here(subscription_id, actor)
        overlap = self._overlap if overlap_seconds is None else overlap_seconds
        secret = new_secret()
        expires = datetime.now(UTC) + timedelta(seconds=overlap)
        response = SecretRotated(
            subscription_id=subscription_id, secret=secret, previous_secret_expires_at=expires
        )
        answer, kept = self._stored(
            ticket, 200, f"{ROUTE_SUBSCRIPTIONS}/{subscription_id}", response
        )
        sealed = self._seal_secret(secret, subscription_id)
        won = await repository.rotate_secret(
            self._pool,
            ticket,
            kept,
            self._ttl,
            subscription_id,
            sealed,
            expires,
            actor.audit_name,
        )
        if won is None:
            raise WebhookSubscriptionNotFound(f"no webhook subscription {subscription_id}")
        if won:
            record_idempotency("new")
            return answer, False
        return await self.replay_stored(ticket), True

    async def recover(self, subscription_id: UUID, body: RecoverRequest, actor: Actor) -> int:
        subscription, _ = await self._visible(subscription_id, actor)
        if subscription.status != "active":
            raise Conflict(
                "the subscription is disabled; re-enable it (PATCH status=active) first",
            )
        return await repository.recover_deliveries(
            self._pool, subscription_id, actor.client_id, body.since, body.until
        )

    # --- Kubernetes-managed subscriptions -------------------------------------------------

    async def _client_ids(self, names: list[str]) -> list[UUID]:
        found = await repository.client_ids_by_name(self._pool, names)
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise InvalidField(f"unknown client(s): {', '.join(unknown)}", field="clients")
        return sorted(set(found.values()))

    async def sync_managed(
        self, managed_ref: str, body: ManagedSubscriptionSync, actor: Actor
    ) -> tuple[Subscription, bool]:
        """Create or replace the subscription of a WebhookSubscription resource; True: created."""
        spec = _spec(body.url, list(body.event_types), body.actions, body.paused)
        await self._check_url(spec.url)
        for i, secret in enumerate(body.secrets):
            try:
                secret_key_bytes(secret.value)
            except InvalidSecret as exc:
                raise InvalidField(str(exc), field=f"secrets[{i}].value") from None
        client_ids = await self._client_ids(list(body.clients))
        async with self._pool.acquire() as conn, conn.transaction():
            existing = await repository.lock_managed_subscription(conn, managed_ref)
            if existing is not None and existing[1] != actor.client_id:
                raise ManagedSubscriptionOwnedElsewhere(
                    f"{managed_ref} is synced by another client"
                )
            subscription_id = await repository.upsert_managed_subscription(
                conn, uuid7.uuid7(), actor.client_id, client_ids, spec, managed_ref
            )
            if subscription_id is None:
                raise ManagedSubscriptionOwnedElsewhere(
                    f"{managed_ref} is synced by another client"
                )
            sealed = [
                SealedSecret(*self._seal_pair(s.value, subscription_id), s.expires_at)
                for s in body.secrets
            ]
            await repository.replace_secrets(conn, subscription_id, sealed)
            await repository.apply_queue_state(conn, subscription_id)
            details = {
                "managed_ref": managed_ref,
                "host": _host(spec.url),
                "event_types": spec.event_types,
                "secrets": len(sealed),
            }
            await repository.audit_sync(
                conn,
                actor.client_id,
                actor.audit_name,
                "webhook_subscription.synced",
                subscription_id,
                details,
            )
        return await self.get(subscription_id, actor), existing is None

    def _seal_pair(self, secret: str, bound_to: UUID) -> tuple[str, bytes]:
        sealed = self._seal_secret(secret, bound_to)
        return sealed.key_id, sealed.sealed

    async def get_managed(self, managed_ref: str, actor: Actor) -> ManagedSubscription:
        """The managed subscription with its delivery health, for the client that syncs it."""
        found = await repository.managed_subscription_health(self._pool, managed_ref)
        if found is None:
            raise WebhookSubscriptionNotFound(f"no managed subscription {managed_ref}")
        if found.owner != actor.client_id:
            raise ManagedSubscriptionOwnedElsewhere(f"{managed_ref} is synced by another client")
        subscription = await self.get(found.subscription_id, actor)
        fields = {f: getattr(subscription, f) for f in subscription.__struct_fields__}
        return ManagedSubscription(**fields, health=found.health)

    async def delete_managed(self, managed_ref: str, actor: Actor) -> None:
        if not await repository.delete_managed_subscription(
            self._pool, managed_ref, actor.client_id, actor.audit_name
        ):
            owner = await repository.managed_subscription_owner(self._pool, managed_ref)
            if owner is not None:
                raise ManagedSubscriptionOwnedElsewhere(
                    f"{managed_ref} is synced by another client"
                )
            raise WebhookSubscriptionNotFound(f"no managed subscription {managed_ref}")

    # --- deliveries ----------------------------------------------------------------------

    async def send_test(
        self,
        ticket: IdempotencyTicket,
        body: TestRequest,
        actor: Actor,
        traceparent: str | None,
    ) -> tuple[StoredResponse, bool]:
        if (body.subscription_id is None) == (body.url is None):
            raise InvalidField("give exactly one of subscription_id and url", field="url")
        delivery_id, event_ref = uuid7.uuid7(), uuid7.uuid7()
        secret: str | None = None
        target: tuple[str, SealedSecret] | None = None
        if body.subscription_id is not None:
            await self._visible(body.subscription_id, actor)
        else:
            assert body.url is not None
            try:
                msgspec.convert(body.url, WebhookUrl)
            except msgspec.ValidationError as exc:
                raise InvalidField(str(exc).split(" - at ")[0], field="url") from None
            await self._check_url(body.url)
            secret = new_secret()
            target = (body.url, self._seal_secret(secret, delivery_id))
        now = datetime.now(UTC)
        payload: dict[str, Any] = {
            "id": str(event_ref),
            "subscription_id": str(body.subscription_id) if body.subscription_id else None,
            "created_at": now.isoformat().replace("+00:00", "Z"),
        }
        response = TestSent(
            delivery_id=message_id(delivery_id),
            subscription_id=body.subscription_id,
            secret=secret,
        )
        answer, kept = self._stored(
            ticket, 202, f"{ROUTE_DELIVERIES}/{message_id(delivery_id)}", response
        )
        won = await repository.send_test(
            self._pool,
            ticket,
            kept,
            self._ttl,
            delivery_id,
            event_ref,
            payload,
            traceparent,
            body.subscription_id,
            target,
        )
        if won:
            record_idempotency("new")
            return answer, False
        return await self.replay_stored(ticket), True

    async def get_delivery(self, delivery_id: UUID, actor: Actor) -> Delivery:
        found = await repository.get_delivery(self._pool, delivery_id, actor.client_id)
        if found is None:
            raise WebhookDeliveryNotFound(f"no delivery {message_id(delivery_id)}")
        return found[0]

    async def list_deliveries(
        self, actor: Actor, where: DeliveryFilter, before: UUID | None, limit: int
    ) -> DeliveryPage:
        rows = await repository.list_deliveries(
            self._pool,
            actor.client_id,
            subscription_id=where.subscription_id,
            status=where.status,
            event_type=where.event_type,
            event_ref=where.event_ref,
            before=before,
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage(data=rows, next_cursor=rows[-1].id if more else None)

    async def replay(self, delivery_id: UUID, actor: Actor) -> Delivery:
        found = await repository.get_delivery(self._pool, delivery_id, actor.client_id)
        if found is None:
            raise WebhookDeliveryNotFound(f"no delivery {message_id(delivery_id)}")
        delivery, subscription_status = found
        if delivery.event_type != "webhook.test" and subscription_status == "disabled":
            raise Conflict("the subscription is disabled; re-enable it (PATCH status=active) first")
        if not await repository.replay_delivery(self._pool, delivery_id, actor.client_id):
            raise DeliveryAlreadyQueued(
                f"delivery {message_id(delivery_id)} is still queued or being delivered"
            )
        return await self.get_delivery(delivery_id, actor)


async def reseal_all(pool: Pool, keys: KeyRing, batch: int = 500) -> int:
    """Re-seal every webhook secret under the key ring's current key; returns how many."""
    current = keys.current_key_id
    done = 0
    for read, write in (
        (repository.secrets_not_under_key, repository.reseal_secret),
        (repository.test_secrets_not_under_key, repository.reseal_test_secret),
    ):
        while rows := await read(pool, current, batch):
            for row_id, bound_to, sealed in rows:
                plain = keys.open(Sealed(sealed.key_id, sealed.sealed), bound_to)
                fresh = keys.seal(plain, bound_to)
                await write(pool, row_id, sealed.key_id, SealedSecret(fresh.key_id, fresh.blob))
                done += 1
    return done

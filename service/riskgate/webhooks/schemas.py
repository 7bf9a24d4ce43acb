"""Wire contract of the webhook API, the delivered envelope, and the records passed between
the service, the worker and the repository."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from riskgate.scoring.schemas import Action
from riskgate.wire import Page, Wire, whole

EventType = Literal[
    "decision.created",
    "transaction.approved",
    "transaction.declined",
    "transaction.flagged",
    "webhook.test",
]
SubscriptionStatus = Literal["active", "disabled"]
DisabledReason = Literal["gone", "failing", "manual"]
DeliveryStatus = Literal["pending", "retrying", "held", "succeeded", "failed", "exhausted"]
AttemptOutcome = Literal["succeeded", "retrying", "failed", "exhausted", "worker_lost"]
"""``worker_lost``: the worker died (or stalled past its lease) mid-attempt; recorded by the
worker that claimed the delivery next. The receiver may have got that request."""
ManagedBy = Literal["api", "kubernetes"]

WebhookUrl = Annotated[
    str,
    Meta(
        min_length=10,
        max_length=2048,
        # Printable ASCII: a URL is ASCII (RFC 3986), and `\s` means different characters in
        # Python and in the ECMA-262 dialect of the OpenAPI document.
        pattern=whole(r"[Hh][Tt][Tt][Pp][Ss]?://[!-~]+"),
        description="An http(s) URL on the public internet (private and loopback targets are "
        "refused unless the deployment allows them).",
        examples=["https://hooks.example.com/riskgate"],
    ),
]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=5)]
Actions = Annotated[
    list[Action],
    Meta(
        max_length=3,
        description="Only `decision.created` events whose action is listed (e.g. only `hold`); "
        "empty: every action.",
    ),
]
Seconds = Annotated[int, Meta(ge=0, le=7 * 86400)]
ClientName = Annotated[str, Meta(pattern=whole(r"[a-z0-9][a-z0-9._-]{1,62}"))]
MANAGED_REF_PART = whole(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
"""A Kubernetes namespace or name (RFC 1123), one half of ``managed_ref``."""
MESSAGE_ID_PATTERN = r"msg_([0-9a-f]{32})"
# Padded base64 (what the decoder takes) of 24 to 66 bytes.
ManagedSecretValue = Annotated[
    str,
    Meta(
        pattern=whole(r"whsec_(?:[A-Za-z0-9+/]{4}){8,22}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
    ),
]

_MSG_ID = re.compile(MESSAGE_ID_PATTERN)


def message_id(delivery_id: UUID) -> str:
    """The ``webhook-id`` (and API id) of a delivery: ``msg_`` + 32 hex digits."""
    return f"msg_{delivery_id.hex}"


def parse_message_id(text: str) -> UUID | None:
    match = _MSG_ID.fullmatch(text)
    return uuid.UUID(match[1]) if match else None


# --- subscriptions -------------------------------------------------------------------------


class SubscriptionCreate(Wire):
    url: WebhookUrl
    event_types: EventTypes
    actions: Actions = []
    paused: bool = False


class SubscriptionUpdate(Wire):
    """Only the fields present change. ``status: active`` re-enables a disabled subscription.

    Same constraints as on creation (checked by the service: constrained types cannot be
    combined with "absent" in the OpenAPI schema generator).
    """

    url: str | UnsetType = UNSET
    event_types: list[EventType] | UnsetType = UNSET
    actions: list[Action] | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    status: SubscriptionStatus | UnsetType = UNSET


def check_update(patch: SubscriptionUpdate) -> None:
    """Apply the creation constraints to the fields present; ValidationError names the field."""
    checks: tuple[tuple[str, object], ...] = (
        ("url", WebhookUrl),
        ("event_types", EventTypes),
        ("actions", Actions),
    )
    for name, kind in checks:
        value = getattr(patch, name)
        if value is not UNSET:
            try:
                msgspec.convert(value, kind)
            except msgspec.ValidationError as exc:
                raise FieldInvalid(name, str(exc)) from None


class FieldInvalid(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class Subscription(Wire):
    id: UUID
    url: str
    event_types: list[EventType]
    actions: list[Action]
    """Only decisions with these actions; empty: all."""
    paused: bool
    """Paused subscriptions queue their deliveries (status ``held``) until resumed."""
    status: SubscriptionStatus
    disabled_reason: DisabledReason | None
    """``gone`` (the receiver answered 410), ``failing`` (failing for too long), ``manual``."""
    failing_since: datetime | None
    """Start of the current run of failed attempts; null while deliveries succeed."""
    managed_by: ManagedBy
    managed_ref: str | None
    """``<namespace>/<name>`` of the WebhookSubscription resource when managed_by is kubernetes."""
    clients: list[str]
    """The clients whose events this subscription receives."""
    previous_secret_expires_at: datetime | None
    """While a rotation overlaps: when the previous secret stops signing."""
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(Subscription):
    secret: str
    """The signing secret, shown once: ``whsec_`` + base64 of 32 random bytes."""


class SubscriptionPage(Page):
    data: list[Subscription]


class RotateSecret(Wire):
    overlap_seconds: Seconds | None = None
    """How long the previous secret keeps signing beside the new one (default 24 h)."""


class SecretRotated(Wire):
    subscription_id: UUID
    secret: str
    previous_secret_expires_at: datetime


class RecoverRequest(Wire):
    since: datetime
    """Re-send the subscription's failed and exhausted deliveries created at or after this."""
    until: datetime | None = None


class RecoverResult(Wire):
    requeued: int


class ManagedSecret(Wire):
    value: ManagedSecretValue
    expires_at: datetime | None = None
    """When this secret stops signing (the previous secret during an overlap); null: current."""


class DeliveryHealth(Wire):
    """How deliveries to a subscription are going, for the operator's status."""

    last_success_at: datetime | None
    """When the latest delivery succeeded; null before the first success."""
    failing_since: datetime | None
    """Start of the current run of failed attempts; null while deliveries succeed."""
    recent_attempts: int
    """Delivery attempts in the last 24 h (at most the latest 1000 count)."""
    recent_success_ratio: float | None
    """Share of those attempts that succeeded (0-1); null without attempts."""
    dead_letters: int
    """Deliveries that used up their retry schedule (``exhausted``) and wait for a replay."""


class ManagedSubscription(Subscription):
    """A Kubernetes-managed subscription with its delivery health (the operator's read)."""

    health: DeliveryHealth


class ManagedSubscriptionSync(Wire):
    """Upsert of a subscription managed from Kubernetes (the operator's sync call)."""

    url: WebhookUrl
    event_types: EventTypes
    clients: Annotated[list[ClientName], Meta(min_length=1, max_length=50)]
    """Clients whose events the subscription receives."""
    secrets: Annotated[list[ManagedSecret], Meta(min_length=1, max_length=3)]
    """Every secret that signs: the operator owns them, riskgate only seals and uses them."""
    actions: Actions = []
    paused: bool = False


# --- deliveries ----------------------------------------------------------------------------


class TestRequest(Wire):
    """Exactly one of ``subscription_id`` and ``url``."""

    subscription_id: UUID | None = None
    url: str | None = None
    """An http(s) URL, as for a subscription."""


class TestSent(Wire):
    delivery_id: str
    subscription_id: UUID | None
    secret: str | None
    """For a bare URL: the one-off secret the test is signed with."""


class Attempt(Wire):
    attempt: int
    started_at: datetime
    duration_ms: int | None
    """Unknown (null) for an attempt lost with its worker."""
    outcome: AttemptOutcome
    status_code: int | None
    error_class: str | None
    response_body: str | None
    """The first bytes of the response body (truncated)."""


class Delivery(Wire):
    id: str
    """The ``webhook-id`` the receiver saw: stable across retries and replays."""
    subscription_id: UUID | None
    url: str | None
    """Only for tests sent to a bare URL."""
    event_type: EventType
    event_ref: UUID
    """riskgate's id of what the event is about (the decision's or transaction's id)."""
    status: DeliveryStatus
    attempts_made: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error_class: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[Attempt]
    """Newest first (the last 20)."""


class DeliveryPage(Page):
    data: list[Delivery]


class Envelope(msgspec.Struct):
    """The JSON body of every delivery."""

    type: str
    timestamp: datetime
    data: msgspec.Raw


# --- records between layers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    url: str
    event_types: list[str]
    actions: list[str] | None
    paused: bool


@dataclass(frozen=True, slots=True)
class ManagedHealthRow:
    subscription_id: UUID
    owner: UUID
    health: DeliveryHealth


@dataclass(frozen=True, slots=True)
class SealedSecret:
    key_id: str
    sealed: bytes
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery claimed by a worker (its lease is ``lock_token``), with what sending needs."""

    id: UUID
    lock_token: UUID
    subscription_id: UUID | None
    event_type: str
    attempt: int
    cycle_attempts: int
    payload: bytes
    event_created_at: datetime
    traceparent: str | None
    url: str
    subscription_status: str | None
    paused: bool
    failing_since: datetime | None
    secrets: list[SealedSecret]
    bound_to: bytes
    """What the secrets are sealed for (the subscription's id, or the delivery's for a bare URL)."""
    reclaimed: bool = False
    """The previous claim's lease ran out unrecorded: that attempt was lost with its worker."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: UUID
    lock_token: UUID
    attempt: int
    outcome: AttemptOutcome
    retry_in: float | None
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error_class: str | None
    response_body: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    due: int
    due_oldest_seconds: float
    outbox: int
    outbox_oldest_seconds: float

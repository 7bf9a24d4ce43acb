"""The domain error hierarchy.

Services and repositories raise these; ``riskgate.http.problems`` is the one place that turns
them into RFC 9457 responses. Nothing below the route layer knows about HTTP statuses except
through the class attributes declared here, so a new error is one class, not a new handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class RiskgateError(Exception):
    """Base of every error the API turns into a problem response."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers: dict[str, str] = dict(headers or {})


# --- 4xx: the client can fix the request -----------------------------------------------------


class BadRequest(RiskgateError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class MalformedBody(BadRequest):
    slug = "malformed-body"
    title = "Request body is not valid JSON"


class DuplicateKey(BadRequest):
    """A key appears twice in one JSON object; ``field`` is its path. Parsers disagree on which
    one counts, so neither may."""

    slug = "duplicate-key"
    title = "Request body repeats a key"


class UnknownQueryParameter(BadRequest):
    """A query parameter the endpoint does not take; ``field`` is its name."""

    slug = "unknown-query-parameter"
    title = "Unknown query parameter"


class InvalidField(RiskgateError):
    """A value failed validation; ``field`` is its dotted path (``signals.delay``)."""

    status = 422
    slug = "validation-error"
    title = "Request failed validation"


class NotFound(RiskgateError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(RiskgateError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class UnsupportedMediaType(RiskgateError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class PayloadTooLarge(RiskgateError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class IdempotencyKeyMissing(BadRequest):
    slug = "idempotency-key-missing"
    title = "Idempotency-Key header required"


class IdempotencyKeyInvalid(BadRequest):
    slug = "idempotency-key-invalid"
    title = "Idempotency-Key header is malformed"


class IdempotencyKeyReused(Conflict):
    slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different request"


class IdempotencyKeyInFlight(Conflict):
    """Another request with the same key is still running; retry after ``Retry-After``."""

    slug = "idempotency-key-in-flight"
    title = "A request with this idempotency key is in progress"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class EventAlreadyScored(Conflict):
    slug = "event-already-scored"
    title = "This event_id was already scored under another idempotency key"


class AccountNotFound(NotFound):
    slug = "account-not-found"
    title = "No such account"


class CurrencyMismatch(InvalidField):
    slug = "currency-mismatch"
    title = "The currency does not match the account's"


class ConcurrentUpdate(Conflict):
    """The resource kept changing while we decided; safe to retry after ``Retry-After``."""

    slug = "concurrent-update"
    title = "The resource is changing too fast; retry"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


# --- 5xx: the service cannot serve right now --------------------------------------------------


class DependencyUnavailable(RiskgateError):
    """A backing service (PostgreSQL) is down or timed out; safe to retry later."""

    status = 503
    slug = "dependency-unavailable"
    title = "A backing service is unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


# --- authentication and authorisation ---------------------------------------------------------


class Unauthenticated(RiskgateError):
    """No usable credential. ``challenge`` becomes the ``WWW-Authenticate`` header (RFC 6750)."""

    status = 401
    slug = "invalid-token"
    title = "Authentication required"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        challenge = 'Bearer realm="riskgate"'
        if error:
            challenge += f', error="{error}", error_description="{_quoted(detail)}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InsufficientScope(RiskgateError):
    status = 403
    slug = "insufficient-scope"
    title = "The credential lacks the scope this endpoint requires"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"this endpoint requires the scope {scope}",
            headers={
                "WWW-Authenticate": f'Bearer realm="riskgate", error="insufficient_scope", '
                f'scope="{scope}"'
            },
        )


class RateLimited(RiskgateError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class OAuthError(RiskgateError):
    """A token-endpoint error (RFC 6749 section 5.2); ``error`` is the OAuth error code."""

    status = 400
    error: ClassVar[str] = "invalid_request"
    slug = "invalid-request"
    title = "Invalid token request"


class OAuthInvalidRequest(OAuthError):
    pass


class OAuthInvalidClient(OAuthError):
    status = 401
    error = "invalid_client"
    slug = "invalid-client"
    title = "Client authentication failed"

    def __init__(self, detail: str, *, basic_challenge: bool) -> None:
        # RFC 6749: a client that tried HTTP Basic gets the Basic challenge back.
        challenge = {"WWW-Authenticate": 'Basic realm="riskgate"'} if basic_challenge else None
        super().__init__(detail, headers=challenge)


class OAuthInvalidScope(OAuthError):
    error = "invalid_scope"
    slug = "invalid-scope"
    title = "Requested scope is invalid or not granted"


class OAuthRetryLater(OAuthError):
    """A token request refused for now, with ``Retry-After``. RFC 6749 has no code for that at
    the token endpoint; this one (its authorization endpoint's) says "try again later"."""

    error = "temporarily_unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class OAuthTooManyFailedAttempts(OAuthRetryLater):
    """Too many failed authentications for this client_id or from this address: refused
    without checking the secret until ``Retry-After``."""

    status = 429
    slug = "too-many-failed-attempts"
    title = "Too many failed authentication attempts"


class OAuthBusy(OAuthRetryLater):
    """Every secret-checking thread is busy and the queue is full: shed, don't queue."""

    status = 503
    slug = "token-endpoint-busy"
    title = "The token endpoint is busy; retry shortly"


class OAuthUnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    slug = "unsupported-grant-type"
    title = "Only the client_credentials grant is supported"


# --- clients ----------------------------------------------------------------------------------


class ClientNotFound(NotFound):
    slug = "client-not-found"
    title = "No such client"


class ClientManagedExternally(Conflict):
    """An ApiClient resource owns this client: change the resource instead."""

    slug = "client-managed-externally"
    title = "This client is managed from Kubernetes and is read-only here"


class ClientNameTaken(Conflict):
    """The name a managed reference derives is held by a client made some other way."""

    slug = "client-name-taken"
    title = "A client not managed from Kubernetes already has this name"


class CredentialsConflict(Conflict):
    """Proposed credentials that clash with stored ones: an API key stored before, or the
    current key paired with another secret. ``field`` names the proposed value."""

    slug = "credentials-conflict"
    title = "The proposed credentials clash with stored ones"


# --- webhooks ---------------------------------------------------------------------------------


class WebhookSubscriptionNotFound(NotFound):
    slug = "webhook-subscription-not-found"
    title = "No such webhook subscription"


class WebhookDeliveryNotFound(NotFound):
    slug = "webhook-delivery-not-found"
    title = "No such webhook delivery"


class SubscriptionManagedExternally(Conflict):
    """Kubernetes owns this subscription: change its WebhookSubscription resource instead."""

    slug = "subscription-managed-externally"
    title = "This subscription is managed from Kubernetes and is read-only here"


class ManagedSubscriptionOwnedElsewhere(Conflict):
    slug = "managed-subscription-owned-elsewhere"
    title = "Another client manages a subscription with this reference"


class WebhookTargetRefused(InvalidField):
    """The URL resolves to an address webhooks may not reach (SSRF guard)."""

    slug = "webhook-target-refused"
    title = "Webhook target not allowed"


class DeliveryAlreadyQueued(Conflict):
    slug = "delivery-already-queued"
    title = "The delivery is still queued or in progress"


class WebhookEncryptionUnavailable(RiskgateError):
    """No key ring is configured, so signing secrets can neither be sealed nor opened."""

    status = 503
    slug = "webhook-encryption-unavailable"
    title = "Webhook secrets cannot be handled: no encryption key is configured"


def _quoted(text: str) -> str:
    """Make ``text`` safe inside an RFC 7235 quoted-string."""
    return text.replace("\\", "").replace('"', "'")

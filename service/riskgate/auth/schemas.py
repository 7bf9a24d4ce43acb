"""Wire contract of the token and JWKS endpoints and of the client admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from riskgate.wire import Wire


class TokenResponse(Wire):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class Jwk(Wire):
    kty: str
    crv: str
    alg: str
    use: str
    kid: str
    x: str


class Jwks(Wire):
    keys: list[Jwk]


# --- the client admin API (/v1/admin/clients) ----------------------------------------------------

ClientStatus = Literal["active", "disabled"]
Seconds = Annotated[int, Meta(ge=0, le=30 * 86400)]


class ManagedClientSpec(Wire):
    """What an ApiClient resource declares; the PUT makes the client exactly this."""

    scopes: Annotated[list[str], Meta(min_length=1, max_length=16)]
    """Scopes the client may request, each one the service has (``clients:admin`` excepted)."""
    rate_limit: str | None = None
    """Its own rate-limit policy such as ``100/60s``; null: the service's default."""
    status: ClientStatus = "active"
    """``disabled`` refuses its tokens and API keys until it is ``active`` again."""


class ManagedClient(Wire):
    """A managed client as the admin API shows it: never a secret or a whole key."""

    client_id: str
    managed_ref: str
    scopes: list[str]
    rate_limit: str | None
    status: ClientStatus
    api_key_prefixes: list[str]
    """Prefixes of the API keys that work now (a rotation's previous key until it expires)."""
    previous_credentials_expire_at: datetime | None
    """While a rotation's overlap lasts: when the previous secret and API key stop working."""
    created_at: datetime
    updated_at: datetime


class ClientCredentials(Wire):
    client_id: str
    client_secret: str
    api_key: str


class ManagedClientApplied(ManagedClient):
    """The PUT's answer."""

    credentials: ClientCredentials | None
    """Only in the answer that creates the client (201), shown this once; null otherwise."""


class RotateCredentials(Wire):
    overlap_seconds: Seconds
    """How long the current secret and API key keep working beside the new ones (0: they stop
    at once). At most 30 days."""


class CredentialsRotated(Wire):
    client_id: str
    client_secret: str
    api_key: str
    previous_credentials_expire_at: datetime | None
    """When the replaced secret and API key stop working; null when they already have."""

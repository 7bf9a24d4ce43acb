"""Wire contract of the token and JWKS endpoints."""

from __future__ import annotations

from typing import Literal

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

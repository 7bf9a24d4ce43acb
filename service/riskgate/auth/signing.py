"""JWT access tokens (RFC 9068) signed with Ed25519, and the JWKS that publishes the keys.

The current key signs; the previous key (if configured) only verifies, so rotating the signing
key keeps tokens issued just before the rotation valid until they expire. Key ids are RFC 7638
thumbprints, so a kid is stable for a key wherever it is loaded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM: Final = "EdDSA"
TOKEN_TYPE: Final = "at+jwt"
CLOCK_SKEW_SECONDS: Final = 10
REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope")


class KeyFileError(Exception):
    """A configured key file is missing or is not an Ed25519 key."""


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (safe to show to the caller)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 over the required members, sorted, no whitespace."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw_public(key))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def generate_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def thumbprint_of_pem(pem: bytes) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return thumbprint(key.public_key())


def _load_pem(path: Path, variable: str | None) -> Ed25519PrivateKey | Ed25519PublicKey:
    try:
        return _parse_pem(path)
    except KeyFileError as exc:
        # The operator fixes a setting, not a path: name the variable that pointed here.
        raise KeyFileError(f"{variable}: {exc}" if variable else str(exc)) from None


def _parse_pem(path: Path) -> Ed25519PrivateKey | Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        key: Any = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise KeyFileError(f"{path} is not a PEM key") from None
    if not isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 key (riskgate signs with EdDSA)")
    return key


@dataclass(frozen=True, slots=True)
class TokenClaims:
    client_ref: uuid.UUID
    client_name: str
    scopes: frozenset[str]
    expires_at: int


class SigningKeys:
    def __init__(
        self,
        current: Ed25519PrivateKey,
        previous: Ed25519PublicKey | None,
        *,
        issuer: str,
        audience: str,
    ) -> None:
        self._current = current
        self._current_kid = thumbprint(current.public_key())
        self._verifiers = {self._current_kid: current.public_key()}
        if previous is not None:
            self._verifiers.setdefault(thumbprint(previous), previous)
        self._issuer = issuer
        self._audience = audience

    @classmethod
    def from_files(
        cls,
        current: Path,
        previous: Path | None,
        *,
        issuer: str,
        audience: str,
        variables: tuple[str, str] | None = None,
    ) -> SigningKeys:
        """Load the keys; ``variables`` names the settings the two paths came from, so an
        unreadable or wrong file is reported by the variable to fix."""
        current_var, previous_var = variables or (None, None)
        signing = _load_pem(current, current_var)
        if not isinstance(signing, Ed25519PrivateKey):
            where = f"{current_var}: " if current_var else ""
            raise KeyFileError(
                f"{where}{current} holds a public key; the signing key must be private"
            )
        old = _load_pem(previous, previous_var) if previous else None
        old_public = old.public_key() if isinstance(old, Ed25519PrivateKey) else old
        return cls(signing, old_public, issuer=issuer, audience=audience)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys, current first, as a JWK Set (RFC 7517)."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": ALGORITHM,
                    "use": "sig",
                    "kid": kid,
                    "x": _b64(_raw_public(key)),
                }
                for kid, key in self._verifiers.items()
            ]
        }

    def issue(self, client_ref: uuid.UUID, client_name: str, scope: str, ttl: int) -> str:
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "sub": str(client_ref),
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "client_id": client_name,
            "scope": scope,
        }
        headers = {"typ": TOKEN_TYPE, "kid": self._current_kid}
        return jwt.encode(claims, self._current, algorithm=ALGORITHM, headers=headers)

    def verify(self, token: str) -> TokenClaims:
        """Check signature, type, issuer, audience and time; raise ``InvalidToken`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is not a JWT") from None
        typ, kid = header.get("typ"), header.get("kid")
        if not isinstance(typ, str) or typ.lower() not in (TOKEN_TYPE, "application/at+jwt"):
            raise InvalidToken("the token is not an access token (typ must be at+jwt)")
        key = self._verifiers.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token was signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # never the header's own choice: no "none", no HS256
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from None
        try:
            return TokenClaims(
                client_ref=uuid.UUID(claims["sub"]),
                client_name=str(claims["client_id"]),
                scopes=frozenset(str(claims["scope"]).split()),
                expires_at=int(claims["exp"]),
            )
        except (ValueError, TypeError):
            raise InvalidToken("the token's claims are malformed") from None

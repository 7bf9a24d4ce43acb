"""Values the idempotency layer passes between routes, services and repositories."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

_KEY_MAX = 255


def is_valid_key(key: str) -> bool:
    """1-255 printable ASCII characters (0x20-0x7E), not starting or ending with a space.

    HTTP strips whitespace around header values, so a padded key would not survive a proxy
    unchanged; refusing it keeps one key one meaning end to end.
    """
    return 0 < len(key) <= _KEY_MAX and key.isascii() and key.isprintable() and key == key.strip()


def canonical_decimal(value: Decimal) -> str:
    """One spelling per value, exactly: ``5``, ``5.0`` and ``5.00`` all give ``5e0``.

    Built from the digits, not with ``Decimal.normalize``, which rounds to the context's
    precision and overflows past its exponent limits (``1e9999999`` is a valid JSON number).
    """
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: refused later, spelled as they are
        return str(value)
    coefficient = "".join(map(str, digits))
    significant = coefficient.rstrip("0")
    if not significant:
        return "0e0"
    exponent += len(coefficient) - len(significant)
    return f"{'-' if sign else ''}{significant.lstrip('0')}e{exponent}"


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return canonical_decimal(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _digest(method: str, route: str, canonical: bytes) -> bytes:
    return hashlib.sha256(b"%s\n%s\n%s" % (method.encode(), route.encode(), canonical)).digest()


def fingerprint(method: str, route: str, body: msgspec.Struct) -> bytes:
    """SHA-256 over method, route template and the canonical form of the decoded body.

    Canonical means decoded-then-re-encoded with sorted keys and money (every Decimal) in one
    spelling, so whitespace, key order and number spelling (``0.5`` vs ``0.50``, ``"5.00"`` vs
    ``5.0``) do not make two equal requests look different.
    """
    tree = _canonical(msgspec.to_builtins(body, builtin_types=(Decimal,)))
    return _digest(method, route, msgspec.json.encode(tree, order="sorted"))


def money_as_spelled_fingerprint(method: str, route: str, body: msgspec.Struct) -> bytes:
    """The fingerprint earlier releases stored: the same, but money as the client spelled it.

    Records made before an upgrade carry it. Matching it too keeps a retry that straddles the
    upgrade a replay: a 409 there could lead a client to resend under a new key and pay twice.
    Records live 72 h, so this can go once every deployment has run the canonical form that
    long.
    """
    return _digest(method, route, msgspec.json.encode(body, order="sorted"))


@dataclass(frozen=True, slots=True)
class IdempotencyTicket:
    """One request's claim on a key: who asks, with which key, for which exact request."""

    client_id: UUID
    key: str
    fingerprint: bytes
    earlier_fingerprint: bytes | None = None
    """What an earlier release stored for the same request, when it differs (see
    ``money_as_spelled_fingerprint``); a stored record with it is a replay too."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response recorded with a key; replays return it unchanged."""

    status: int
    headers: dict[str, str]
    body: bytes

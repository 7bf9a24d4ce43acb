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


def fingerprint(method: str, route: str, body: msgspec.Struct) -> bytes:
    """SHA-256 over method, route template and the canonical form of the decoded body.

    Canonical means decoded-then-re-encoded with sorted keys and money (every Decimal) in one
    spelling, so whitespace, key order and number spelling (``0.5`` vs ``0.50``, ``"5.00"`` vs
    ``5.0``) do not make two equal requests look different.
    """
    tree = _canonical(msgspec.to_builtins(body, builtin_types=(Decimal,)))
    canonical = msgspec.json.encode(tree, order="sorted")
    return hashlib.sha256(b"%s\n%s\n%s" % (method.encode(), route.encode(), canonical)).digest()


@dataclass(frozen=True, slots=True)
class IdempotencyTicket:
    """One request's claim on a key: who asks, with which key, for which exact request."""

    client_id: UUID
    key: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response recorded with a key; replays return it unchanged."""

    status: int
    headers: dict[str, str]
    body: bytes

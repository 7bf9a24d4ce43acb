"""Values the idempotency layer passes between routes, services and repositories."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from uuid import UUID

import msgspec

_KEY_MAX = 255


def is_valid_key(key: str) -> bool:
    """1-255 printable ASCII characters (0x20-0x7E), not starting or ending with a space.

    HTTP strips whitespace around header values, so a padded key would not survive a proxy
    unchanged; refusing it keeps one key one meaning end to end.
    """
    return 0 < len(key) <= _KEY_MAX and key.isascii() and key.isprintable() and key == key.strip()


def fingerprint(method: str, route: str, body: msgspec.Struct) -> bytes:
    """SHA-256 over method, route template and the canonical form of the decoded body.

    Canonical means decoded-then-re-encoded with sorted keys, so whitespace, key order and
    number spelling (``0.5`` vs ``0.50``) do not make two equal requests look different.
    """
    canonical = msgspec.json.encode(body, order="sorted")
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

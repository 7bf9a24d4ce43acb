"""Opaque cursors for keyset pagination over UUIDv7 ids (newest first)."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from riskgate.errors import InvalidField
from riskgate.wire import whole

CURSOR_PATTERN = whole(r"[A-Za-z0-9_-]{22}")
"""What ``encode_cursor`` makes: 16 bytes in unpadded base64url."""


def encode_cursor(last: UUID) -> str:
    return base64.urlsafe_b64encode(last.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> UUID | None:
    """The id to continue after, or 422 naming ``cursor`` when it is not one of ours."""
    if cursor is None:
        return None
    try:
        return UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidField("not a cursor returned by this endpoint", field="cursor") from None

"""Conventions every request and response struct shares, set once."""

from __future__ import annotations

import msgspec


class Wire(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every wire struct: unknown fields are errors, never silently dropped."""


class Page(Wire):
    """Envelope of every cursor-paginated list: pass ``next_cursor`` back as ``cursor``."""

    next_cursor: str | None

"""Conventions every request and response struct shares, set once."""

from __future__ import annotations

import msgspec


def whole(pattern: str) -> str:
    """``pattern`` anchored so that it must match the whole string, in every dialect it meets.

    msgspec checks a pattern with Python's ``re.search``, where ``$`` also matches before a
    trailing newline: ``^ev-1$`` accepts ``"ev-1\\n"``, a different id. ``\\Z`` would fix that
    but is not ECMA-262, the dialect of the JSON Schema in the OpenAPI document (there it means
    a literal ``Z``). ``$`` followed by "no newline next" means the very end in both.
    """
    return f"^(?:{pattern})$(?!\\n)"


class Wire(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every wire struct: unknown fields are errors, never silently dropped."""


class Page(Wire):
    """Envelope of every cursor-paginated list: pass ``next_cursor`` back as ``cursor``."""

    next_cursor: str | None

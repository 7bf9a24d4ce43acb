"""The scopes a client can hold, one per capability of the API (DESIGN section 2)."""

from __future__ import annotations

from typing import Final

SCOPES: Final = (
    "score:write",
    "events:read",
    "transactions:write",
    "accounts:read",
    "accounts:write",
    "webhooks:read",
    "webhooks:write",
    "subscriptions:sync",
    "clients:admin",
)
ADMIN_SCOPE: Final = "clients:admin"
"""The client admin API's (/v1/admin/clients): only the operator's own client should hold it."""
_KNOWN: Final = frozenset(SCOPES)


class UnknownScope(ValueError):
    """A scope string names something this service does not have."""


def parse_scopes(text: str) -> frozenset[str]:
    """Split a space-separated scope list (RFC 6749 3.3) and check every entry is known."""
    scopes = frozenset(text.split())
    unknown = scopes - _KNOWN
    if unknown:
        raise UnknownScope(f"unknown scope(s): {' '.join(sorted(unknown))}")
    return scopes


def format_scopes(scopes: frozenset[str]) -> str:
    """Scopes in the declared order, space-separated, as tokens and responses carry them."""
    return " ".join(scope for scope in SCOPES if scope in scopes)

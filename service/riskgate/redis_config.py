"""Validation and parsing of the Redis settings (the ``# --- redis`` fields).

Kept apart from ``redis_fastpath``: settings are checked before ``riskgate api`` prepares the
metrics directory, and the fast path imports the metrics module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from riskgate.settings import Settings

SENTINEL_URL_SCHEMES = frozenset({"redis", "rediss"})


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (IPv6 in brackets) as (host, port) pairs; empty for ``""``."""
    addresses = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        parts = urlsplit(f"//{entry}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.netloc != entry or "@" in entry:
            raise ValueError(f"{entry!r} is not host:port")
        addresses.append((parts.hostname, port))
    return addresses


def check_redis_settings(settings: Settings) -> None:
    """Raise ValueError naming the env var of the first bad Redis setting."""
    try:
        sentinels = parse_sentinels(settings.redis_sentinels)
    except ValueError as exc:
        raise ValueError(f"RISKGATE_REDIS_SENTINELS: {exc}") from None
    if not sentinels:
        return
    if urlsplit(settings.redis_url).scheme not in SENTINEL_URL_SCHEMES:
        raise ValueError(
            "RISKGATE_REDIS_URL: with RISKGATE_REDIS_SENTINELS it must be redis:// or rediss:// "
            "(it carries the password, database and TLS of the nodes Sentinel points at)"
        )
    if not settings.redis_sentinel_master.strip():
        raise ValueError("RISKGATE_REDIS_SENTINEL_MASTER: must name the monitored master")

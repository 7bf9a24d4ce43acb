"""Validation and loading of the webhook settings (the ``# --- webhooks`` fields)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from riskgate.webhooks.crypto import KeyRing, KeyRingError
from riskgate.webhooks.retry import parse_schedule

if TYPE_CHECKING:
    from riskgate.settings import Settings

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_RESERVED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "traceparent"}
)


def check_webhook_settings(settings: Settings) -> None:
    """Raise ValueError naming the env var of the first bad webhook setting."""
    try:
        parse_schedule(settings.webhook_retry_schedule)
    except ValueError as exc:
        raise ValueError(f"RISKGATE_WEBHOOK_RETRY_SCHEDULE: {exc}") from None
    header = settings.webhook_signature_header
    if not _TOKEN.fullmatch(header) or header.lower() in _RESERVED_HEADERS:
        raise ValueError(
            "RISKGATE_WEBHOOK_SIGNATURE_HEADER: must be an HTTP header name (e.g. "
            "Riskgate-Signature) other than the Standard Webhooks ones"
        )
    if settings.worker_lease_seconds <= settings.webhook_timeout_seconds:
        raise ValueError(
            "RISKGATE_WORKER_LEASE_SECONDS: must exceed RISKGATE_WEBHOOK_TIMEOUT_SECONDS, or an "
            "attempt could outlive its claim and run twice at once"
        )
    if settings.webhook_dead_letter_retention_days < settings.webhook_delivery_retention_days:
        raise ValueError(
            "RISKGATE_WEBHOOK_DEAD_LETTER_RETENTION_DAYS: must be at least "
            "RISKGATE_WEBHOOK_DELIVERY_RETENTION_DAYS: dead letters wait for someone to replay them"
        )
    if settings.webhook_encryption_keys:
        try:
            KeyRing.parse(settings.webhook_encryption_keys)
        except KeyRingError as exc:
            raise ValueError(f"RISKGATE_WEBHOOK_ENCRYPTION_KEYS: {exc}") from None


def load_key_ring(settings: Settings) -> KeyRing:
    """The key ring from the inline setting, else from the file; may be empty."""
    if settings.webhook_encryption_keys:
        return KeyRing.parse(settings.webhook_encryption_keys)
    if settings.webhook_encryption_keys_file:
        path = Path(settings.webhook_encryption_keys_file)
        try:
            return KeyRing.parse(path.read_text(encoding="utf-8"))
        except (OSError, KeyRingError) as exc:
            raise ValueError(f"RISKGATE_WEBHOOK_ENCRYPTION_KEYS_FILE: {exc}") from None
    return KeyRing([])


def private_targets_allowed(settings: Settings) -> bool:
    """Dev mode always allows loopback and private targets (receivers on the laptop)."""
    return settings.webhook_allow_private_targets or settings.is_dev

"""Every pattern-checked identifier matches the whole string: a trailing newline never passes.

Python's ``$`` also matches just before a final newline, so ``"ev-1\\n"`` used to be accepted
as an id distinct from ``"ev-1"``. Each pattern is tried with a valid value, that value with a
newline after it, and with a newline and more text after it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from riskgate.accounts.schemas import CustomerRef
from riskgate.scoring.schemas import EVENT_ID_PATTERN, SOURCE_PATTERN, EventId, Source
from riskgate.settings import Settings, SettingsError
from riskgate.webhooks.crypto import KeyRing, KeyRingError, generate_key_entry
from riskgate.webhooks.schemas import (
    MANAGED_REF_PART,
    MESSAGE_ID_PATTERN,
    ClientName,
    ManagedSecretValue,
    WebhookUrl,
    parse_message_id,
)
from riskgate.wire import whole

SECRET = "whsec_" + "A" * 43 + "="
MESSAGE_ID = "msg_" + "0123456789abcdef" * 2

WIRE_TYPES = [
    pytest.param(EventId, "ev-1", id="event_id"),
    pytest.param(Source, "flight", id="source"),
    pytest.param(CustomerRef, "cust_7f3a91", id="customer_ref"),
    pytest.param(WebhookUrl, "https://hooks.example.com/riskgate", id="webhook-url"),
    pytest.param(ClientName, "checkout", id="client-name"),
    pytest.param(ManagedSecretValue, SECRET, id="managed-secret"),
]


def suffixed(value: str) -> list[str]:
    return [value + "\n", value + "\n\n", value + "\nx", value + "\r\n"]


@pytest.mark.parametrize(("kind", "valid"), WIRE_TYPES)
def test_wire_identifier_refuses_a_trailing_newline(kind: Any, valid: str) -> None:
    assert msgspec.convert(valid, kind) == valid
    for bad in suffixed(valid):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, kind)


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        pytest.param(MANAGED_REF_PART, "payments", id="managed-namespace-or-name"),
        pytest.param(whole(MESSAGE_ID_PATTERN), MESSAGE_ID, id="delivery-id"),
        pytest.param(whole(SOURCE_PATTERN), "flight", id="source-filter"),
        pytest.param(whole(EVENT_ID_PATTERN), "ev-1", id="event-id-filter"),
    ],
)
def test_path_and_query_pattern_refuses_a_trailing_newline(pattern: str, valid: str) -> None:
    """Litestar checks these with ``re.search``, as msgspec does."""
    assert re.search(pattern, valid)
    for bad in suffixed(valid):
        assert not re.search(pattern, bad)


def test_message_id_refuses_a_trailing_newline() -> None:
    assert parse_message_id(MESSAGE_ID) is not None
    for bad in suffixed(MESSAGE_ID):
        assert parse_message_id(bad) is None


def test_encryption_key_id_refuses_a_trailing_newline() -> None:
    assert generate_key_entry("2026-11").startswith("2026-11:")
    with pytest.raises(KeyRingError):
        generate_key_entry("2026-11\n")
    entry = generate_key_entry("k1")
    key = entry.partition(":")[2]
    with pytest.raises(KeyRingError):
        KeyRing.parse(f"k1\t:{key}")


def test_signature_header_name_refuses_a_trailing_newline() -> None:
    required = {
        "database_url": "postgresql://riskgate@127.0.0.1/riskgate",
        "redis_url": "redis://127.0.0.1:6379/0",
        "jwt_signing_key_file": "/run/secrets/jwt.pem",
    }
    settings = Settings.from_env({}, **required, webhook_signature_header="Acme-Signature")
    assert settings.webhook_signature_header == "Acme-Signature"
    with pytest.raises(SettingsError, match="RISKGATE_WEBHOOK_SIGNATURE_HEADER"):
        Settings.from_env({}, **required, webhook_signature_header="Acme-Signature\n")


@pytest.mark.parametrize("text", ["ev-1", "x"])
def test_whole_means_the_end_in_python_and_in_json_schema(text: str) -> None:
    """The same pattern is published in the OpenAPI document, read by ECMA-262 engines: it
    must not use Python-only syntax such as ``\\Z``."""
    pattern = whole(r"[a-z0-9-]+")
    assert re.search(pattern, text)
    assert not re.search(pattern, text + "\n")
    assert "\\Z" not in pattern

"""The key ring sealing webhook secrets, and the webhook settings' validation."""

from __future__ import annotations

import base64

import pytest

from riskgate.settings import Settings, SettingsError
from riskgate.webhooks.crypto import KeyRing, KeyRingError, UnsealError, generate_key_entry

OLD = f"old:{base64.b64encode(b'o' * 32).decode()}"
NEW = f"new:{base64.b64encode(b'n' * 32).decode()}"


def test_seal_with_the_first_key_open_with_any() -> None:
    sealed = KeyRing.parse(OLD).seal(b"whsec_abc", b"sub-1")
    assert sealed.key_id == "old"
    assert b"whsec_abc" not in sealed.blob
    rotated = KeyRing.parse(f"{NEW},{OLD}")
    assert rotated.open(sealed, b"sub-1") == b"whsec_abc"
    assert rotated.seal(b"x", b"y").key_id == "new"


def test_a_sealed_value_opens_only_where_it_belongs() -> None:
    ring = KeyRing.parse(OLD)
    sealed = ring.seal(b"whsec_abc", b"sub-1")
    with pytest.raises(UnsealError):
        ring.open(sealed, b"sub-2")
    with pytest.raises(UnsealError):
        KeyRing.parse(NEW).open(sealed, b"sub-1")
    packed = ring.seal_packed(b"body", b"k")
    assert ring.open_packed(packed, b"k") == b"body"
    with pytest.raises(UnsealError):
        ring.open_packed(packed[:-1] + bytes([packed[-1] ^ 1]), b"k")


@pytest.mark.parametrize(
    "text", ["nokey", "a:notbase64!", f"a:{base64.b64encode(b'short').decode()}", f"{OLD},{OLD}"]
)
def test_malformed_rings_are_refused(text: str) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.parse(text)


def test_generated_entries_parse() -> None:
    assert KeyRing.parse(generate_key_entry("2026-11")).current_key_id == "2026-11"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RISKGATE_WEBHOOK_RETRY_SCHEDULE": "0s,5 parsecs"}, "RISKGATE_WEBHOOK_RETRY_SCHEDULE"),
        ({"RISKGATE_WEBHOOK_ENCRYPTION_KEYS": "k:short"}, "RISKGATE_WEBHOOK_ENCRYPTION_KEYS"),
        ({"RISKGATE_WEBHOOK_SIGNATURE_HEADER": "bad header"}, "RISKGATE_WEBHOOK_SIGNATURE_HEADER"),
        ({"RISKGATE_WORKER_LEASE_SECONDS": "10"}, "RISKGATE_WORKER_LEASE_SECONDS"),
    ],
)
def test_bad_webhook_settings_stop_the_process_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    base = {
        "RISKGATE_DATABASE_URL": "postgresql://x/y",
        "RISKGATE_REDIS_URL": "redis://x",
        "RISKGATE_JWT_SIGNING_KEY_FILE": "/k.pem",
    }
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**base, **env})

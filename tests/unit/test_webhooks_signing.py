"""Both signature schemes, checked against the reference Standard Webhooks library and a
hand-written verifier of ``t=...,v1=...``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from riskgate.webhooks.signing import (
    InvalidSecret,
    new_secret,
    riskgate_signature,
    secret_key_bytes,
    signature_headers,
)

BODY = b'{"type":"decision.created","timestamp":"2026-01-01T00:00:00Z","data":{"score":38.5}}'


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret


def test_standard_webhooks_library_verifies_our_headers() -> None:
    secret = new_secret()
    headers = signature_headers([secret], "msg_1", int(time.time()), BODY, "Riskgate-Signature")
    assert Webhook(secret).verify(BODY, headers)["data"]["score"] == 38.5
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_riskgate_header_is_hex_hmac_of_timestamp_dot_body_keyed_with_the_whole_secret() -> None:
    secret, timestamp = new_secret(), 1_700_000_000
    headers = signature_headers([secret], "msg_1", timestamp, BODY, "X-Acme-Signature")
    expected = hmac.new(secret.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers["X-Acme-Signature"] == f"t=1700000000,v1={expected}"
    assert riskgate_signature(secret, timestamp, BODY) == expected


def test_during_a_rotation_every_secret_signs_each_header() -> None:
    old, new = new_secret(), new_secret()
    headers = signature_headers([new, old], "msg_2", int(time.time()), BODY, "Riskgate-Signature")
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["Riskgate-Signature"].count(",v1=") == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize(
    "secret",
    ["nope", "whsec_!!!", "whsec_" + base64.b64encode(b"x" * 16).decode()],
)
def test_malformed_or_short_secrets_are_refused(secret: str) -> None:
    with pytest.raises(InvalidSecret):
        secret_key_bytes(secret)

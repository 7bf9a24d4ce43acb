"""Webhook signing secrets and the two signature schemes every delivery carries.

* Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp``
  and ``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``, keyed with
  the base64-decoded bytes after ``whsec_`` (what its libraries do).
* Riskgate's own ``<Name>-Signature: t=<timestamp>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>``,
  keyed, like Stripe's, with the whole secret string as shown to the user.

While a secret rotates every unexpired secret signs, so each header carries several signatures
and a receiver holding either secret verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24


class InvalidSecret(ValueError):
    pass


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The Standard Webhooks HMAC key: the base64-decoded part after ``whsec_``."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidSecret(f"a webhook secret carries at least {MIN_SECRET_BYTES} random bytes")
    return key


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def riskgate_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d.%s" % (timestamp, body), hashlib.sha256).hexdigest()


def signature_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes, header_name: str
) -> dict[str, str]:
    """Every signing header of one attempt; ``body`` must be the exact bytes sent."""
    standard = " ".join(
        standard_signature(secret_key_bytes(s), msg_id, timestamp, body) for s in secrets
    )
    riskgate = ",".join(
        [f"t={timestamp}", *(f"v1={riskgate_signature(s, timestamp, body)}" for s in secrets)]
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
        header_name: riskgate,
    }

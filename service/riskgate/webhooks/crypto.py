"""AES-256-GCM sealing of webhook signing secrets under a key ring.

The ring is ordered: the first key seals, every key opens, so the encryption key rotates
without downtime (put the new key first, run ``riskgate keys rotate`` to re-seal what the old
key sealed, then drop the old key). A sealed value is stored as ``(key_id, nonce || ciphertext)``
and bound by AES-GCM's associated data to what it belongs to (its subscription), so a sealed
secret copied onto another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from riskgate.errors import WebhookEncryptionUnavailable

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")


class KeyRingError(ValueError):
    """The configured key ring is malformed (the message says how)."""


class UnsealError(Exception):
    """A sealed value does not open: unknown key id, wrong binding, or tampered bytes."""


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    blob: bytes
    """nonce (12 bytes) followed by ciphertext and tag."""


def generate_key_entry(key_id: str) -> str:
    """A new ring entry ``<key_id>:<base64 key>``."""
    if not _KEY_ID.fullmatch(key_id):
        raise KeyRingError("a key id is 1-32 of A-Z a-z 0-9 . _ -")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._order = [key_id for key_id, _ in keys]
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """``kid:base64key`` entries separated by commas or newlines; empty gives an empty ring."""
        entries = [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]
        keys: list[tuple[str, bytes]] = []
        for entry in entries:
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise KeyRingError(
                    "each entry is <key id>:<base64 key>, key id 1-32 of A-Za-z0-9._-"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"key {key_id!r} is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} must be {KEY_BYTES} bytes, not {len(key)}")
            if key_id in dict(keys):
                raise KeyRingError(f"key id {key_id!r} appears twice")
            keys.append((key_id, key))
        return cls(keys)

    @property
    def configured(self) -> bool:
        return bool(self._order)

    @property
    def current_key_id(self) -> str:
        if not self._order:
            raise WebhookEncryptionUnavailable(
                "no webhook encryption key is configured (RISKGATE_WEBHOOK_ENCRYPTION_KEYS)"
            )
        return self._order[0]

    def seal(self, plaintext: bytes, bound_to: bytes) -> Sealed:
        key_id = self.current_key_id
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(key_id, nonce + self._keys[key_id].encrypt(nonce, plaintext, bound_to))

    def open(self, sealed: Sealed, bound_to: bytes) -> bytes:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise UnsealError(f"key id {sealed.key_id!r} is not in the key ring")
        nonce, ciphertext = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, ciphertext, bound_to)
        except InvalidTag:
            raise UnsealError("sealed value does not open (tampered or bound elsewhere)") from None

    def seal_packed(self, plaintext: bytes, bound_to: bytes) -> bytes:
        """Seal into one self-describing blob: ``len(key_id) || key_id || nonce || ciphertext``."""
        sealed = self.seal(plaintext, bound_to)
        key_id = sealed.key_id.encode()
        return bytes([len(key_id)]) + key_id + sealed.blob

    def open_packed(self, packed: bytes, bound_to: bytes) -> bytes:
        n = packed[0] if packed else 0
        if n == 0 or len(packed) < 1 + n + NONCE_BYTES:
            raise UnsealError("not a packed sealed value")
        return self.open(Sealed(packed[1 : 1 + n].decode(), packed[1 + n :]), bound_to)

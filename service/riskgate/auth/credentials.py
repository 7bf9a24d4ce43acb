"""Generating and checking client secrets and API keys.

Client secrets are hashed with scrypt (salted, memory-hard): a client's chosen secret may be
weak, as the dev demo's is, and the token endpoint is not a hot path. API keys are always 256
random bits, so a plain SHA-256 resists guessing equally well and lets each request find its
key with one indexed lookup instead of a slow hash.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Final

SECRET_PREFIX: Final = "rgs_"
API_KEY_PREFIX: Final = "rgk_"
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$digest``: parameters travel with the hash so they can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a ``hash_secret`` value."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


class VerifierBusy(Exception):
    """Every thread is busy and the queue is full."""


class SecretVerifier:
    """Checks client secrets on a few threads, never on the event loop.

    scrypt takes tens of milliseconds of CPU (and releases the GIL while it runs): on the loop,
    a handful of token requests would stall every other request of the process meanwhile.
    ``threads`` bounds the CPU it takes; past ``threads + queue`` checks admitted at once, the
    next one is refused (``VerifierBusy``) instead of waiting behind an unbounded queue.
    """

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="riskgate-secret")
        self._capacity = threads + queue
        self._admitted = 0

    async def verify(self, secret: str, stored: str) -> bool:
        if self._admitted >= self._capacity:
            raise VerifierBusy(f"{self._admitted} secret checks are already running or queued")
        self._admitted += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, verify_secret, secret, stored)
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def api_key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def api_key_prefix(key: str) -> str:
    """What listings show of a key: enough to tell keys apart, useless for authenticating."""
    return key[: len(API_KEY_PREFIX) + 6]

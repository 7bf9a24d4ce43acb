"""Idempotency rules: the in-flight lease, and what a second request with a used key gets."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from redis.asyncio.client import Redis

from riskgate.db import Pool
from riskgate.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from riskgate.idempotency import repository
from riskgate.idempotency.schemas import IdempotencyTicket, StoredResponse
from riskgate.observability.metrics import record_idempotency
from riskgate.redis_fastpath import RedisGuard, load_script

Work = Callable[[], Awaitable[tuple[StoredResponse, bool]]]
Replay = Callable[[IdempotencyTicket], Awaitable[StoredResponse]]
"""How a route reads back a key's stored answer (default: as stored; webhooks unseal theirs)."""


class IdempotencyGate:
    """A Redis lease (owner token, bounded lifetime) in front of a request's work.

    The lease only turns a concurrent duplicate into a fast answer; it guarantees nothing. The
    guarantee is the primary key of ``idempotency_keys``, claimed in the same statement as the
    work, which is why losing Redis (or the lease expiring) never runs a request twice.

    A lease is released only when the work fails. After a success it simply runs out: the
    record is in PostgreSQL by then, so a duplicate that finds the lease taken is answered from
    there (a replay, or 409 if the body differs), and only a key with no record yet is reported
    in flight. That saves a Redis round trip on every successful request.
    """

    def __init__(
        self, redis: RedisGuard, pool: Pool, lease_seconds: float, retry_after_seconds: int
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._lease_ms = int(lease_seconds * 1000)
        self._retry_after = retry_after_seconds
        self._release = load_script(redis.client, __package__ or __name__, "release_lease.lua")

    async def run(
        self, ticket: IdempotencyTicket, work: Work, replay: Replay | None = None
    ) -> tuple[StoredResponse, bool]:
        """``work()`` under the key's lease; if another request holds it, the key's answer."""
        name = f"riskgate:idem:{ticket.client_id}:{ticket.key}"
        token = secrets.token_hex(16)

        async def acquire(client: Redis) -> bool:
            return bool(await client.set(name, token, nx=True, px=self._lease_ms))

        acquired = await self._redis.call("idempotency_lock", acquire)
        if acquired is False:  # None means Redis is down: carry on, PostgreSQL decides
            if replay is not None:
                return await replay(ticket), True
            return await resolve_existing(self._pool, ticket, self._retry_after), True
        try:
            return await work()
        except BaseException:
            if acquired:  # let the client retry at once instead of waiting out the lease
                await self._redis.call(
                    "idempotency_unlock", lambda _: self._release(keys=[name], args=[token])
                )
            raise


async def settle(
    pool: Pool, ticket: IdempotencyTicket, stored: StoredResponse, *, won: bool, retry_after: int
) -> tuple[StoredResponse, bool]:
    """How every creating write ends: its own response if it won the key, else the answer the
    key already has (a replay or a 409). Returns (response, is it a replay)."""
    if won:
        record_idempotency("new")
        return stored, False
    return await resolve_existing(pool, ticket, retry_after), True


def _same_request(stored_fingerprint: bytes, ticket: IdempotencyTicket) -> bool:
    candidates = (ticket.fingerprint, ticket.earlier_fingerprint)
    return any(
        secrets.compare_digest(stored_fingerprint, candidate)
        for candidate in candidates
        if candidate is not None
    )


async def resolve_existing(
    pool: Pool, ticket: IdempotencyTicket, retry_after: int
) -> StoredResponse:
    """The answer for a request whose key was already claimed: a replay, or a 409."""
    found = await repository.fetch_record(pool, ticket.client_id, ticket.key)
    if found is None:
        # No record yet: the first request is still running (or died, and its lease will end).
        record_idempotency("in_flight")
        raise IdempotencyKeyInFlight(
            "a request with this Idempotency-Key is still being processed",
            retry_after_seconds=retry_after,
        )
    stored_fingerprint, response = found
    if not _same_request(stored_fingerprint, ticket):
        record_idempotency("mismatch")
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body or route"
        )
    record_idempotency("replayed")
    return response

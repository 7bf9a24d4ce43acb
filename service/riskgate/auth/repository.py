"""All SQL of clients and their credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from riskgate.db import Connection, Pool, load_queries

_Q = load_queries(__package__ or "riskgate.auth")
Tx: TypeAlias = "Connection | PoolConnectionProxy[asyncpg.Record]"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    id: UUID
    name: str
    secret_hash: str
    scopes: frozenset[str]
    active: bool
    rate_limit: str | None
    managed_ref: str | None = None
    """``<namespace>/<name>`` of the ApiClient resource that owns it; None for CLI-made clients."""
    previous_secret_hash: str | None = None
    """The secret a rotation replaced, while its overlap lasts (only from ``client_by_name``)."""
    status: str = "active"


@dataclass(frozen=True, slots=True)
class ManagedClientView:
    """What the admin API shows of a managed client: never a secret or a whole key."""

    name: str
    managed_ref: str
    scopes: list[str]
    status: str
    rate_limit: str | None
    created_at: datetime
    updated_at: datetime
    previous_credentials_expire_at: datetime | None
    active_key_prefixes: list[str]


@dataclass(frozen=True, slots=True)
class ClientListing:
    name: str
    scopes: list[str]
    status: str
    rate_limit: str | None
    created_at: datetime
    active_key_prefixes: list[str]


@dataclass(frozen=True, slots=True)
class NewApiKey:
    id: UUID
    hash: bytes
    prefix: str


@dataclass(frozen=True, slots=True)
class RotationTarget:
    """A client locked for a rotation, as ``lock_for_rotation`` found it."""

    id: UUID
    secret_hash: str
    previous_expires_at: datetime | None
    key_is_current: bool
    """Whether the proposed API key is the client's current one already."""


class ApiKeyInUse(Exception):
    """The API key's hash is stored already (keys are unique across all clients, ever)."""


_API_KEY_UNIQUE = "api_keys_key_hash_key"


async def _with_new_key(db: Pool | Tx, query: str, *args: object) -> object:
    """``fetchval`` of a statement that inserts an API key; a key stored before is
    ``ApiKeyInUse``, not a server error (only a caller proposing its own key can cause it)."""
    try:
        return await db.fetchval(query, *args)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == _API_KEY_UNIQUE:
            raise ApiKeyInUse from None
        raise


def _record(row: asyncpg.Record | None) -> ClientRecord | None:
    if row is None:
        return None
    return ClientRecord(
        id=row["id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        scopes=frozenset(row["scopes"]),
        active=row["status"] == "active",
        rate_limit=row["rate_limit"],
        managed_ref=row["managed_ref"],
        previous_secret_hash=row["previous_secret_hash"],
        status=row["status"],
    )


async def create_client(
    db: Pool | Tx,
    client: ClientRecord,
    key: NewApiKey | None,
    actor: str,
) -> bool:
    """Insert the client with its first API key, if any; False when the name is taken."""
    created = await _with_new_key(
        db,
        _Q["create_client"],
        client.id,
        client.name,
        client.secret_hash,
        sorted(client.scopes),
        client.rate_limit,
        key.id if key else None,
        key.hash if key else None,
        key.prefix if key else None,
        actor,
        client.managed_ref,
        client.status,
    )
    return bool(created)


async def client_by_name(db: Pool | Connection, name: str) -> ClientRecord | None:
    return _record(await db.fetchrow(_Q["client_by_name"], name))


async def client_by_id(db: Pool | Connection, client_ref: UUID) -> ClientRecord | None:
    return _record(await db.fetchrow(_Q["client_by_id"], client_ref))


async def client_by_api_key(
    db: Pool | Connection, key_hash: bytes
) -> tuple[ClientRecord | None, float | None]:
    """The key's client, and the seconds the key has left if a rotation retired it."""
    row = await db.fetchrow(_Q["client_by_api_key"], key_hash)
    return _record(row), row["key_seconds_left"] if row else None


async def list_clients(db: Pool | Connection) -> list[ClientListing]:
    return [ClientListing(**dict(row)) for row in await db.fetch(_Q["list_clients"])]


async def set_status(
    db: Pool | Connection, name: str, status: str, actor: str
) -> tuple[bool, bool]:
    """(changed, found)."""
    row = await db.fetchrow(_Q["set_status"], name, status, actor)
    assert row is not None
    return bool(row["changed"]), bool(row["found"])


async def lock_for_rotation(conn: Tx, name: str, key_hash: bytes) -> RotationTarget | None:
    row = await conn.fetchrow(_Q["lock_for_rotation"], name, key_hash)
    return RotationTarget(**dict(row)) if row else None


async def rotate_credentials(
    db: Pool | Tx,
    name: str,
    secret_hash: str,
    key: NewApiKey,
    actor: str,
    overlap_seconds: float,
) -> datetime | None:
    """When the replaced secret and keys stop working; None when there is no such client."""
    ends = await _with_new_key(
        db,
        _Q["rotate_credentials"],
        name,
        secret_hash,
        key.id,
        key.hash,
        key.prefix,
        actor,
        overlap_seconds,
    )
    assert ends is None or isinstance(ends, datetime)
    return ends


async def update_client(
    db: Pool | Connection,
    read: ClientRecord,
    wanted: ClientRecord,
    changed: list[str],
    actor: str,
) -> bool:
    """Write ``wanted``'s secret hash, scopes and rate limit, audited, only if the row still
    matches ``read``; False when someone changed it in between."""
    updated: bool = await db.fetchval(
        _Q["update_client"],
        read.name,
        wanted.secret_hash,
        sorted(wanted.scopes),
        wanted.rate_limit,
        read.secret_hash,
        sorted(read.scopes),
        read.rate_limit,
        actor,
        changed,
    )
    return updated


async def lock_managed_client(conn: Tx, managed_ref: str) -> ClientRecord | None:
    """The managed client, locked until the caller's transaction ends."""
    return _record(await conn.fetchrow(_Q["lock_managed_client"], managed_ref))


async def update_managed_client(
    conn: Tx, wanted: ClientRecord, changed: list[str], actor: str
) -> None:
    """Write scopes, rate limit and status of a client the caller holds locked, audited."""
    await conn.execute(
        _Q["update_managed_client"],
        wanted.managed_ref,
        sorted(wanted.scopes),
        wanted.rate_limit,
        wanted.status,
        actor,
        changed,
    )


async def managed_client(db: Pool | Tx, managed_ref: str) -> ManagedClientView | None:
    row = await db.fetchrow(_Q["managed_client"], managed_ref)
    return ManagedClientView(**dict(row)) if row else None


async def delete_managed_client(
    db: Pool | Connection, managed_ref: str, name: str, actor: str
) -> bool:
    """Tombstone the client (no credential works any more); False when there is none."""
    deleted: bool = await db.fetchval(_Q["delete_managed_client"], managed_ref, name, actor)
    return deleted

"""All SQL of clients and their credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from riskgate.db import Connection, Pool, load_queries

_Q = load_queries(__package__ or "riskgate.auth")


@dataclass(frozen=True, slots=True)
class ClientRecord:
    id: UUID
    name: str
    secret_hash: str
    scopes: frozenset[str]
    active: bool
    rate_limit: str | None


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
    )


async def create_client(
    db: Pool | Connection,
    client: ClientRecord,
    key: NewApiKey | None,
    actor: str,
) -> bool:
    """Insert the client with its first API key, if any; False when the name is taken."""
    created: bool = await db.fetchval(
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
    )
    return created


async def client_by_name(db: Pool | Connection, name: str) -> ClientRecord | None:
    return _record(await db.fetchrow(_Q["client_by_name"], name))


async def client_by_id(db: Pool | Connection, client_ref: UUID) -> ClientRecord | None:
    return _record(await db.fetchrow(_Q["client_by_id"], client_ref))


async def client_by_api_key(db: Pool | Connection, key_hash: bytes) -> ClientRecord | None:
    return _record(await db.fetchrow(_Q["client_by_api_key"], key_hash))


async def list_clients(db: Pool | Connection) -> list[ClientListing]:
    return [ClientListing(**dict(row)) for row in await db.fetch(_Q["list_clients"])]


async def set_status(
    db: Pool | Connection, name: str, status: str, actor: str
) -> tuple[bool, bool]:
    """(changed, found)."""
    row = await db.fetchrow(_Q["set_status"], name, status, actor)
    assert row is not None
    return bool(row["changed"]), bool(row["found"])


async def rotate_credentials(
    db: Pool | Connection, name: str, secret_hash: str, key: NewApiKey, actor: str
) -> bool:
    rotated: bool = await db.fetchval(
        _Q["rotate_credentials"], name, secret_hash, key.id, key.hash, key.prefix, actor
    )
    return rotated


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

"""All SQL of the audit domain. Rows are written by each domain's own statement (the insert
trigger chains them); this module only reads the chain back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg

from riskgate.db import Connection, load_queries

_Q = load_queries(__package__ or "riskgate.audit")


async def chain_rows(conn: Connection) -> AsyncIterator[asyncpg.Record]:
    """Every entry in (chain, seq) order; call inside a transaction (server-side cursor)."""
    async for row in conn.cursor(_Q["chain"], prefetch=2000):
        yield row


async def chain_heads(conn: Connection) -> dict[int, tuple[int, bytes]]:
    """Each chain's recorded end: chain -> (last seq, last hash)."""
    rows = await conn.fetch(_Q["heads"])
    return {row["chain"]: (row["last_seq"], bytes(row["last_hash"])) for row in rows}

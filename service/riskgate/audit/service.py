"""Verification of the audit chains (``riskgate audit verify``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from riskgate.audit import repository
from riskgate.db import Connection

GENESIS_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    """Entries verified (before the break, if there is one), over all chains."""
    broken_chain: int | None = None
    broken_at: int | None = None
    """The seq, within ``broken_chain``, of the first entry that does not verify."""
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


@dataclass(slots=True)
class _Walk:
    """Where the walk of one chain stands."""

    seq: int = 0
    last_hash: bytes = GENESIS_HASH


def _row_problem(row: asyncpg.Record, walk: _Walk) -> str | None:
    if row["seq"] != walk.seq + 1:
        return f"expected entry {walk.seq + 1} next, found {row['seq']}: entries were deleted"
    if bytes(row["prev_hash"]) != walk.last_hash:
        return "prev_hash does not match the previous entry's hash: the chain was re-linked"
    if bytes(row["recomputed"]) != bytes(row["hash"]):
        return "content does not match its hash: the entry was modified"
    return None


def _tail_problem(
    heads: dict[int, tuple[int, bytes]], walks: dict[int, _Walk]
) -> ChainReport | None:
    checked = sum(walk.seq for walk in walks.values())
    for chain, (last_seq, last_hash) in heads.items():
        walk = walks.get(chain, _Walk())
        if (walk.seq, walk.last_hash) != (last_seq, last_hash):
            return ChainReport(
                checked=checked,
                broken_chain=chain,
                broken_at=walk.seq + 1,
                problem=f"chain ends at entry {walk.seq} but its head records {last_seq}: "
                "entries were removed from the end",
            )
    return None


async def verify_chain(conn: Connection) -> ChainReport:
    """Walk every chain in one snapshot and report the first broken link, if any."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = await repository.chain_heads(conn)
        walks: dict[int, _Walk] = {}
        async for row in repository.chain_rows(conn):
            walk = walks.setdefault(row["chain"], _Walk())
            problem = _row_problem(row, walk)
            if problem:
                checked = sum(w.seq for w in walks.values())
                return ChainReport(checked, row["chain"], walk.seq + 1, problem)
            walk.seq, walk.last_hash = row["seq"], bytes(row["hash"])
    return _tail_problem(heads, walks) or ChainReport(checked=sum(w.seq for w in walks.values()))

"""Verification of the audit chain (``riskgate audit verify``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from riskgate.audit import repository
from riskgate.db import Connection

GENESIS_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _row_problem(row: asyncpg.Record, expected_seq: int, expected_prev: bytes) -> str | None:
    if row["seq"] != expected_seq:
        return f"expected entry {expected_seq} next, found {row['seq']}: entries were deleted"
    if bytes(row["prev_hash"]) != expected_prev:
        return "prev_hash does not match the previous entry's hash: the chain was re-linked"
    if bytes(row["recomputed"]) != bytes(row["hash"]):
        return "content does not match its hash: the entry was modified"
    return None


async def verify_chain(conn: Connection) -> ChainReport:
    """Walk the whole chain in one snapshot and report the first broken link, if any."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        last_seq, last_hash = await repository.chain_head(conn)
        checked, expected_prev = 0, GENESIS_HASH
        async for row in repository.chain_rows(conn):
            problem = _row_problem(row, checked + 1, expected_prev)
            if problem:
                return ChainReport(checked=checked, broken_at=checked + 1, problem=problem)
            checked, expected_prev = row["seq"], bytes(row["hash"])
    if (checked, expected_prev) != (last_seq, last_hash):
        return ChainReport(
            checked=checked,
            broken_at=checked + 1,
            problem=f"chain ends at entry {checked} but the head records {last_seq}: "
            "entries were removed from the end",
        )
    return ChainReport(checked=checked)

"""Verification of the audit chains (``riskgate audit verify``) and their published heads
(``riskgate audit heads``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from riskgate.audit import repository
from riskgate.audit.schemas import ChainHead, PublishedHeads
from riskgate.db import Connection

GENESIS_HASH = bytes(32)

Anchors = Mapping[int, tuple[int, bytes]]
"""chain -> (seq, hash) of an entry known from outside the database (a published head)."""


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


def _row_problem(row: asyncpg.Record, walk: _Walk, anchor: tuple[int, bytes] | None) -> str | None:
    if row["seq"] != walk.seq + 1:
        return f"expected entry {walk.seq + 1} next, found {row['seq']}: entries were deleted"
    if bytes(row["prev_hash"]) != walk.last_hash:
        return "prev_hash does not match the previous entry's hash: the chain was re-linked"
    if bytes(row["recomputed"]) != bytes(row["hash"]):
        return "content does not match its hash: the entry was modified"
    if anchor is not None and anchor[0] == row["seq"] and anchor[1] != bytes(row["hash"]):
        return "the entry's hash differs from the published head's: the chain was rewritten"
    return None


def _end_problem(walk: _Walk, head: tuple[int, bytes]) -> tuple[int, str] | None:
    """Does the chain end where its head row says? (the seq that breaks, and why)"""
    last_seq, last_hash = head
    if walk.seq > last_seq:
        return last_seq + 1, (
            f"entry {last_seq + 1} lies past the chain's recorded head (entry {last_seq}): "
            "it was appended without the insert trigger"
        )
    if walk.seq < last_seq:
        return walk.seq + 1, (
            f"chain ends at entry {walk.seq} but its head records {last_seq}: "
            "entries were removed from the end"
        )
    if walk.last_hash != last_hash:
        return last_seq, "the entry's hash differs from the one its head records: one was rewritten"
    return None


def _anchor_problem(walk: _Walk, anchor: tuple[int, bytes] | None) -> tuple[int, str] | None:
    """Does the chain still reach its published head? (hashes are checked during the walk)"""
    if anchor is None or walk.seq >= anchor[0]:
        return None
    return walk.seq + 1, (
        f"chain ends at entry {walk.seq} but a published head records entry {anchor[0]}: "
        "entries were removed from the end, and the head with them"
    )


def _tail_report(
    heads: Mapping[int, tuple[int, bytes]], walks: dict[int, _Walk], anchors: Anchors
) -> ChainReport:
    total = sum(walk.seq for walk in walks.values())
    for chain in sorted(heads.keys() | walks.keys() | anchors.keys()):
        walk = walks.get(chain, _Walk())
        head = heads.get(chain, (0, GENESIS_HASH))
        found = _end_problem(walk, head) or _anchor_problem(walk, anchors.get(chain))
        if found:
            broken_at, problem = found
            checked = total - max(0, walk.seq - broken_at + 1)
            return ChainReport(checked, chain, broken_at, problem)
    return ChainReport(checked=total)


async def verify_chain(conn: Connection, anchors: Anchors | None = None) -> ChainReport:
    """Walk every chain in one snapshot and report the first broken link, if any.

    ``anchors`` are published heads (``riskgate audit heads``): each chain must still hold
    that entry with that hash, which catches a tail removed together with its head row.
    """
    anchors = anchors or {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = await repository.chain_heads(conn)
        walks: dict[int, _Walk] = {}
        async for row in repository.chain_rows(conn):
            walk = walks.setdefault(row["chain"], _Walk())
            problem = _row_problem(row, walk, anchors.get(row["chain"]))
            if problem:
                checked = sum(w.seq for w in walks.values())
                return ChainReport(checked, row["chain"], walk.seq + 1, problem)
            walk.seq, walk.last_hash = row["seq"], bytes(row["hash"])
    return _tail_report(heads, walks, anchors)


async def published_heads(conn: Connection) -> PublishedHeads:
    """Every chain's recorded head, to publish outside the database."""
    heads = await repository.chain_heads(conn)
    return PublishedHeads(
        taken_at=datetime.now(UTC),
        chains=[ChainHead(chain, seq, digest.hex()) for chain, (seq, digest) in heads.items()],
    )

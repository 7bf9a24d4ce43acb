"""Published chain heads: what ``riskgate audit heads`` prints and ``verify --against`` reads."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ChainHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Entry ``seq`` of ``chain`` has ``hash`` (hex SHA-256); seq 0 is the empty chain."""

    chain: int
    seq: int
    hash: str


class PublishedHeads(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every chain's head at ``taken_at``. Kept outside the database (a ticket, a Git
    repository, a write-once bucket), it anchors the chains: entries up to these can be
    neither removed nor rewritten unnoticed, even by someone who rewrites the heads table."""

    taken_at: datetime
    chains: list[ChainHead]

    def anchors(self) -> dict[int, tuple[int, bytes]]:
        """chain -> (seq, hash); ValueError if a hash is not 64 hex digits."""
        found = {}
        for head in self.chains:
            digest = bytes.fromhex(head.hash)
            if len(digest) != 32:
                raise ValueError(f"chain {head.chain}: a hash is 64 hex digits")
            found[head.chain] = (head.seq, digest)
        return found

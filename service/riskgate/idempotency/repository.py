"""SQL for idempotency records. Claiming a key happens inside each domain's own write statement
(``claim_idempotency_key`` in the schema) so the claim commits or rolls back with the work."""

from __future__ import annotations

from uuid import UUID

from riskgate.db import Connection, Pool, load_queries
from riskgate.idempotency.schemas import StoredResponse

_Q = load_queries(__package__ or "riskgate.idempotency")


async def fetch_record(
    db: Pool | Connection, client_id: UUID, key: str
) -> tuple[bytes, StoredResponse] | None:
    """The live record for (client, key) as (fingerprint, response), or None."""
    row = await db.fetchrow(_Q["fetch_record"], client_id, key)
    if row is None:
        return None
    response = StoredResponse(
        status=row["response_status"],
        headers=dict(row["response_headers"]),
        body=bytes(row["response_body"]),
    )
    return bytes(row["fingerprint"]), response


async def purge_expired(db: Pool | Connection, batch_size: int) -> int:
    """Delete up to ``batch_size`` expired records; returns how many went."""
    status = await db.execute(_Q["purge_expired"], batch_size)
    return int(status.split()[-1])

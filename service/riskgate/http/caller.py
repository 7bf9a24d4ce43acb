"""Who is calling. Until client authentication exists every request belongs to one
anonymous client; everything that is per-client (idempotency keys, events, audit rows)
already stores this id, so real client ids slot in without a schema change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request

ANONYMOUS_CLIENT_ID = UUID(int=0)


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: UUID
    actor: str
    """How the audit log names the caller."""


ANONYMOUS = Caller(client_id=ANONYMOUS_CLIENT_ID, actor="client:anonymous")


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    return ANONYMOUS

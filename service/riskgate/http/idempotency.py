"""The ``Idempotency-Key`` header and replayed responses, as HTTP sees them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response

from riskgate.auth.service import Caller
from riskgate.errors import IdempotencyKeyInvalid, IdempotencyKeyMissing
from riskgate.http.security import caller_of
from riskgate.idempotency.schemas import (
    IdempotencyTicket,
    StoredResponse,
    fingerprint,
    is_valid_key,
    money_as_spelled_fingerprint,
)
from riskgate.idempotency.service import IdempotencyGate, Replay
from riskgate.observability.metrics import record_idempotency
from riskgate.observability.tracing import current_trace_context, format_traceparent

HEADER = "idempotency-key"
HEADER_NAME = "Idempotency-Key"


def idempotency_ticket(
    request: Request[Any, Any, Any], caller: Caller, route: str, body: msgspec.Struct
) -> IdempotencyTicket:
    """The caller's claim on the request's key, or a 400 when the key is absent or malformed."""
    keys = request.headers.getall(HEADER, [])
    if not keys:
        record_idempotency("missing_key")
        raise IdempotencyKeyMissing("this endpoint requires an Idempotency-Key header")
    if len(keys) > 1:
        # We would read the first; a proxy or client library may keep the last.
        raise IdempotencyKeyInvalid("send exactly one Idempotency-Key header", field=HEADER_NAME)
    key = keys[0]
    if not is_valid_key(key):
        raise IdempotencyKeyInvalid(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            field=HEADER_NAME,
        )
    current = fingerprint(request.method, route, body)
    earlier = money_as_spelled_fingerprint(request.method, route, body)
    return IdempotencyTicket(
        caller.client_id, key, current, None if earlier == current else earlier
    )


def stored_response(stored: StoredResponse, *, replayed: bool) -> Response[Any]:
    headers = dict(stored.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        content=stored.body,
        status_code=stored.status,
        headers=headers,
        media_type="application/json",
    )


Trace = tuple[str, str | None]
"""(trace id for the response body, W3C traceparent for the outbox row)."""
IdempotentWork = Callable[
    [IdempotencyTicket, Caller, Trace], Awaitable[tuple[StoredResponse, bool]]
]


async def respond_idempotently(
    request: Request[Any, Any, Any],
    route: str,
    body: msgspec.Struct,
    gate: IdempotencyGate,
    work: IdempotentWork,
    replay: Replay | None = None,
) -> Response[Any]:
    """Every creating POST: check the key, hold its lease, do the work once, answer with the
    stored response (marked as a replay when it is one)."""
    caller = caller_of(request)
    ticket = idempotency_ticket(request, caller, route, body)
    trace = (current_trace_context()[0], format_traceparent() or None)
    stored, replayed = await gate.run(ticket, lambda: work(ticket, caller, trace), replay)
    return stored_response(stored, replayed=replayed)

"""POST /v1/transactions and GET /v1/transactions/{id}."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from riskgate.errors import NotFound
from riskgate.http.body import StrictBody
from riskgate.http.idempotency import respond_idempotently
from riskgate.http.problems import problem_responses
from riskgate.http.security import caller_of
from riskgate.runtime import Runtime
from riskgate.transactions import repository
from riskgate.transactions.schemas import DebitRequest, TransactionResponse

ROUTE = "/v1/transactions"


@post(
    ROUTE,
    opt={"scope": "transactions:write", "idempotent": True},
    dto=StrictBody[DebitRequest],
    return_dto=None,
    status_code=201,
    tags=["transactions"],
    summary="Debit an account",
    description=(
        "Stores a transaction whatever its outcome: `approved` (balance debited), `declined` "
        "(`account_not_active` or `insufficient_funds`, in that order of precedence) or "
        "`flagged_for_fraud` (above the fraud threshold; nothing deducted). Requires an "
        "`Idempotency-Key`: the same key and body debit once."
    ),
    response_headers=[
        ResponseHeader(
            name="Location", description="The stored transaction", documentation_only=True
        ),
    ],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def create_transaction(
    request: Request[Any, Any, Any], data: JSONBody[DebitRequest], runtime: NamedDependency[Runtime]
) -> Response[TransactionResponse]:
    response: Response[Any] = await respond_idempotently(
        request,
        ROUTE,
        data,
        runtime.idempotency,
        lambda ticket, caller, trace: runtime.transactions.debit(
            ticket, data, actor=caller.actor, trace=trace
        ),
    )
    return response


@get(
    "/v1/transactions/{transaction_id:uuid}",
    opt={"scope": "accounts:read"},
    tags=["transactions"],
    summary="Get a transaction",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_transaction(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    transaction_id: Annotated[UUID, PathParameter(description="riskgate's transaction id")],
) -> TransactionResponse:
    found = await repository.get_transaction(
        runtime.pool, transaction_id, caller_of(request).client_id
    )
    if found is None:
        raise NotFound(f"no transaction {transaction_id}")
    return found

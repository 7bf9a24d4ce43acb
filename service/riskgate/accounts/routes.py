"""POST /v1/accounts, GET /v1/accounts/{id} and GET /v1/accounts/{id}/statement."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from riskgate.accounts.schemas import AccountResponse, OpenAccount, Statement
from riskgate.http.body import StrictBody
from riskgate.http.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from riskgate.http.idempotency import respond_idempotently
from riskgate.http.problems import problem_responses
from riskgate.http.security import caller_of
from riskgate.runtime import Runtime

ROUTE = "/v1/accounts"
MAX_STATEMENT_PAGE = 100
AccountPath = Annotated[int, PathParameter(ge=1, le=2**63 - 1, description="riskgate's account id")]


@post(
    ROUTE,
    opt={"scope": "accounts:write", "idempotent": True},
    dto=StrictBody[OpenAccount],
    return_dto=None,
    status_code=201,
    tags=["accounts"],
    summary="Open an account",
    description=(
        "Opens an account for a pseudonymous `customer_ref` with an opening balance. Requires an "
        "`Idempotency-Key`; a retry with the same key and body replays the stored response."
    ),
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
async def open_account(
    request: Request[Any, Any, Any], data: JSONBody[OpenAccount], runtime: NamedDependency[Runtime]
) -> Response[AccountResponse]:
    response: Response[Any] = await respond_idempotently(
        request,
        ROUTE,
        data,
        runtime.idempotency,
        lambda ticket, caller, _trace: runtime.accounts.open(ticket, data, actor=caller.actor),
    )
    return response


@get(
    "/v1/accounts/{account_id:int}",
    opt={"scope": "accounts:read"},
    tags=["accounts"],
    summary="Get an account",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_account(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], account_id: AccountPath
) -> AccountResponse:
    return await runtime.accounts.get(account_id, caller_of(request).client_id)


@get(
    "/v1/accounts/{account_id:int}/statement",
    opt={"scope": "accounts:read"},
    tags=["accounts"],
    summary="Account statement",
    description=(
        "Balance and the most recent transactions, newest first (`limit`, default 5, at most "
        "100). Pass `next_cursor` back as `cursor` for older ones."
    ),
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def account_statement(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    account_id: AccountPath,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_STATEMENT_PAGE)] = 5,
    cursor: Annotated[str | None, QueryParameter(pattern=CURSOR_PATTERN)] = None,
) -> Statement:
    statement, more = await runtime.accounts.statement(
        account_id, caller_of(request).client_id, before=decode_cursor(cursor), limit=limit
    )
    if more:
        statement.next_cursor = encode_cursor(statement.transactions[-1].id)
    return statement

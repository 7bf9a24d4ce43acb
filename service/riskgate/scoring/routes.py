"""POST /v1/score."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody

from riskgate.http.body import StrictBody
from riskgate.http.idempotency import respond_idempotently
from riskgate.http.problems import problem_responses
from riskgate.runtime import Runtime
from riskgate.scoring.schemas import DecisionResponse, ScoreRequest

ROUTE = "/v1/score"


@post(
    ROUTE,
    opt={"scope": "score:write", "idempotent": True},
    dto=StrictBody[ScoreRequest],
    return_dto=None,
    status_code=201,
    tags=["scoring"],
    summary="Score an event",
    description=(
        "Scores non-personal signals into a deterministic decision and stores it with its audit "
        "trail. Requires an `Idempotency-Key`: a retry with the same key and body returns the "
        "stored response with `Idempotent-Replayed: true`."
    ),
    response_headers=[
        ResponseHeader(name="Location", description="The stored event", documentation_only=True),
        ResponseHeader(
            name="Idempotent-Replayed",
            description="`true` when this is the stored response of an earlier request",
            documentation_only=True,
            required=False,
        ),
    ],
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
async def score_event(
    request: Request[Any, Any, Any], data: JSONBody[ScoreRequest], runtime: NamedDependency[Runtime]
) -> Response[DecisionResponse]:
    response: Response[Any] = await respond_idempotently(
        request,
        ROUTE,
        data,
        runtime.idempotency,
        lambda ticket, caller, trace: runtime.scoring.score(
            ticket, data, actor=caller.actor, trace=trace
        ),
    )
    return response

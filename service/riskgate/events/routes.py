"""GET /v1/events and GET /v1/events/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from riskgate.errors import NotFound
from riskgate.events import repository
from riskgate.events.repository import EventFilter
from riskgate.events.schemas import EventDetail, EventPage
from riskgate.http.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from riskgate.http.problems import problem_responses
from riskgate.http.security import caller_of
from riskgate.runtime import Runtime
from riskgate.scoring.schemas import EVENT_ID_PATTERN, SOURCE_PATTERN, Action
from riskgate.wire import whole

MAX_PAGE = 100


@get(
    "/v1/events/{event_ref:uuid}",
    opt={"scope": "events:read"},
    tags=["events"],
    summary="Get an event",
    description="The event, its decision (and any shadow decisions) and its audit trail.",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_event(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    event_ref: Annotated[
        UUID, PathParameter(description="riskgate's id of the event (`id` in the score response)")
    ],
) -> EventDetail:
    event = await repository.get_event(runtime.pool, caller_of(request).client_id, event_ref)
    if event is None:
        raise NotFound(f"no event {event_ref}")
    return event


@get(
    "/v1/events",
    opt={"scope": "events:read"},
    tags=["events"],
    summary="List events",
    description="Newest first. Pass `next_cursor` back as `cursor` for the next page.",
    responses=problem_responses(401, 403, 422, 429, 503),
)
async def list_events(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    action: Annotated[Action | None, QueryParameter()] = None,
    source: Annotated[str | None, QueryParameter(pattern=whole(SOURCE_PATTERN))] = None,
    event_id: Annotated[str | None, QueryParameter(pattern=whole(EVENT_ID_PATTERN))] = None,
    created_after: Annotated[
        datetime | None, QueryParameter(description="inclusive, RFC 3339")
    ] = None,
    created_before: Annotated[
        datetime | None, QueryParameter(description="exclusive, RFC 3339")
    ] = None,
    cursor: Annotated[str | None, QueryParameter(pattern=CURSOR_PATTERN)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
) -> EventPage:
    where = EventFilter(action, source, created_after, created_before, event_id)
    rows = await repository.list_events(
        runtime.pool, caller_of(request).client_id, where, decode_cursor(cursor), limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(data=rows, next_cursor=encode_cursor(rows[-1].id) if more else None)

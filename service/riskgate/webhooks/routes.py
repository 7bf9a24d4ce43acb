"""The webhook API: /v1/webhooks/subscriptions, /deliveries, /test, /managed-subscriptions."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from riskgate.auth.service import Caller
from riskgate.errors import InvalidField, WebhookDeliveryNotFound
from riskgate.http.body import StrictBody
from riskgate.http.idempotency import respond_idempotently
from riskgate.http.problems import problem_responses
from riskgate.http.security import caller_of
from riskgate.runtime import Runtime
from riskgate.webhooks.schemas import (
    MANAGED_REF_PART,
    MESSAGE_ID_PATTERN,
    Delivery,
    DeliveryPage,
    DeliveryStatus,
    EventType,
    ManagedSubscription,
    ManagedSubscriptionSync,
    RecoverRequest,
    RecoverResult,
    RotateSecret,
    SecretRotated,
    Subscription,
    SubscriptionCreate,
    SubscriptionPage,
    SubscriptionUpdate,
    SubscriptionWithSecret,
    TestRequest,
    TestSent,
    parse_message_id,
)
from riskgate.webhooks.service import ROUTE_DELIVERIES, ROUTE_SUBSCRIPTIONS, Actor, DeliveryFilter
from riskgate.wire import whole

READ = {"scope": "webhooks:read"}
WRITE = {"scope": "webhooks:write"}
IDEMPOTENT_WRITE = {**WRITE, "idempotent": True}
SYNC = {"scope": "subscriptions:sync"}
TAGS = ["webhooks"]
MAX_PAGE = 100
ONE = f"{ROUTE_SUBSCRIPTIONS}/{{subscription_id:uuid}}"
MANAGED = "/v1/webhooks/managed-subscriptions/{namespace:str}/{name:str}"
SubscriptionId = Annotated[UUID, PathParameter(description="The subscription's id")]
DeliveryId = Annotated[
    str,
    PathParameter(pattern=whole(MESSAGE_ID_PATTERN), description="The delivery's `webhook-id`"),
]
# Litestar checks a path parameter against its PathParameter's own constraints only (a Meta
# nested inside the type is ignored), so the pattern must sit here.
Namespace = Annotated[
    str, PathParameter(pattern=MANAGED_REF_PART, description="The resource's namespace")
]
Name = Annotated[str, PathParameter(pattern=MANAGED_REF_PART, description="The resource's name")]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
SubscriptionCursor = Annotated[
    str | None,
    QueryParameter(pattern=whole(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")),
]
DeliveryCursor = Annotated[str | None, QueryParameter(pattern=whole(MESSAGE_ID_PATTERN))]


def _actor(request: Request[Any, Any, Any]) -> Actor:
    return _actor_of(caller_of(request))


def _actor_of(caller: Caller) -> Actor:
    return Actor(caller.client_id, caller.name, caller.actor)


def _uuid_cursor(cursor: str | None) -> UUID | None:
    if cursor is None:
        return None
    try:
        return UUID(cursor)
    except ValueError:
        raise InvalidField("not a cursor returned by this endpoint", field="cursor") from None


def _delivery_id(text: str) -> UUID:
    found = parse_message_id(text)
    if found is None:
        raise WebhookDeliveryNotFound(f"no delivery {text}")
    return found


# --- subscriptions ---------------------------------------------------------------------------


@post(
    ROUTE_SUBSCRIPTIONS,
    opt=IDEMPOTENT_WRITE,
    dto=StrictBody[SubscriptionCreate],
    return_dto=None,
    status_code=201,
    tags=TAGS,
    summary="Create a subscription",
    description="Returns the signing secret once. Requires an `Idempotency-Key`.",
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
async def create_subscription(
    request: Request[Any, Any, Any],
    data: JSONBody[SubscriptionCreate],
    runtime: NamedDependency[Runtime],
) -> Response[SubscriptionWithSecret]:
    response: Response[Any] = await respond_idempotently(
        request,
        ROUTE_SUBSCRIPTIONS,
        data,
        runtime.idempotency,
        lambda ticket, caller, _trace: runtime.webhooks.create(ticket, data, _actor_of(caller)),
        runtime.webhooks.replay_stored,
    )
    return response


@get(
    ROUTE_SUBSCRIPTIONS,
    opt=READ,
    tags=TAGS,
    summary="List subscriptions",
    description="Newest first; pass `next_cursor` back as `cursor`.",
    responses=problem_responses(401, 403, 422, 429, 503),
)
async def list_subscriptions(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    cursor: SubscriptionCursor = None,
    limit: Limit = 20,
) -> SubscriptionPage:
    return await runtime.webhooks.list_subscriptions(_actor(request), _uuid_cursor(cursor), limit)


@get(
    ONE,
    opt=READ,
    tags=TAGS,
    summary="Get a subscription",
    responses=problem_responses(401, 403, 404, 429, 503),
)
async def get_subscription(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    subscription_id: SubscriptionId,
) -> Subscription:
    return await runtime.webhooks.get(subscription_id, _actor(request))


@patch(
    ONE,
    opt=WRITE,
    dto=StrictBody[SubscriptionUpdate],
    return_dto=None,
    tags=TAGS,
    summary="Change a subscription",
    description="Only the fields sent change. `paused: true` holds deliveries until resumed; "
    "`status: active` re-enables a disabled subscription. 409 for Kubernetes-managed ones.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def update_subscription(
    request: Request[Any, Any, Any],
    data: JSONBody[SubscriptionUpdate],
    runtime: NamedDependency[Runtime],
    subscription_id: SubscriptionId,
) -> Subscription:
    return await runtime.webhooks.update(subscription_id, data, _actor(request))


@delete(
    ONE,
    opt=WRITE,
    tags=TAGS,
    summary="Delete a subscription",
    status_code=204,
    responses=problem_responses(401, 403, 404, 409, 429, 503),
)
async def delete_subscription(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    subscription_id: SubscriptionId,
) -> None:
    await runtime.webhooks.delete(subscription_id, _actor(request))


@post(
    f"{ONE}/rotate-secret",
    opt=IDEMPOTENT_WRITE,
    status_code=200,
    tags=TAGS,
    summary="Rotate the signing secret",
    description="Returns the new secret once. Both secrets sign every delivery until the "
    "previous one expires after `overlap_seconds` (default 24 h). Requires an `Idempotency-Key`.",
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429, 503),
)
async def rotate_secret(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    subscription_id: SubscriptionId,
    overlap_seconds: Annotated[int | None, QueryParameter(ge=0, le=7 * 86400)] = None,
) -> Response[SecretRotated]:
    body = RotateSecret(overlap_seconds=overlap_seconds)
    response: Response[Any] = await respond_idempotently(
        request,
        f"{ROUTE_SUBSCRIPTIONS}/{subscription_id}/rotate-secret",
        body,
        runtime.idempotency,
        lambda ticket, caller, _trace: runtime.webhooks.rotate_secret(
            ticket, subscription_id, overlap_seconds, _actor_of(caller)
        ),
        runtime.webhooks.replay_stored,
    )
    return response


@post(
    f"{ONE}/recover",
    opt=WRITE,
    dto=StrictBody[RecoverRequest],
    return_dto=None,
    status_code=202,
    tags=TAGS,
    summary="Re-send failed deliveries",
    description="Queues again every failed or exhausted delivery of the subscription created "
    "at or after `since` (and before `until`), with a fresh retry schedule.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def recover_subscription(
    request: Request[Any, Any, Any],
    data: JSONBody[RecoverRequest],
    runtime: NamedDependency[Runtime],
    subscription_id: SubscriptionId,
) -> RecoverResult:
    count = await runtime.webhooks.recover(subscription_id, data, _actor(request))
    return RecoverResult(requeued=count)


# --- Kubernetes-managed subscriptions ------------------------------------------------------------


@put(
    MANAGED,
    opt=SYNC,
    dto=StrictBody[ManagedSubscriptionSync],
    return_dto=None,
    tags=TAGS,
    summary="Create or replace a Kubernetes-managed subscription",
    description="The operator's sync of a WebhookSubscription resource (`namespace/name`): "
    "URL, event types, the clients whose events it receives and every secret that signs. "
    "201 when created, 200 when replaced. Such subscriptions are read-only elsewhere.",
    responses={
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
        201: ResponseSpec(Subscription, description="Created"),
    },
)
async def sync_managed_subscription(
    request: Request[Any, Any, Any],
    data: JSONBody[ManagedSubscriptionSync],
    runtime: NamedDependency[Runtime],
    namespace: Namespace,
    name: Name,
) -> Response[Subscription]:
    subscription, created = await runtime.webhooks.sync_managed(
        f"{namespace}/{name}", data, _actor(request)
    )
    return Response(subscription, status_code=201 if created else 200)


@get(
    MANAGED,
    opt=SYNC,
    tags=TAGS,
    summary="Get a Kubernetes-managed subscription with its delivery health",
    description="The operator's read-back for the resource's status: the subscription as synced "
    "plus `health` (latest success, failing since, the success ratio of the last 24 h of "
    "attempts, dead letters). 404 when it does not exist, 409 when another client syncs it.",
    responses=problem_responses(401, 403, 404, 409, 429, 503),
)
async def get_managed_subscription(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    namespace: Namespace,
    name: Name,
) -> ManagedSubscription:
    return await runtime.webhooks.get_managed(f"{namespace}/{name}", _actor(request))


@delete(
    MANAGED,
    opt=SYNC,
    tags=TAGS,
    status_code=204,
    summary="Delete a Kubernetes-managed subscription",
    responses=problem_responses(401, 403, 404, 409, 429, 503),
)
async def delete_managed_subscription(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    namespace: Namespace,
    name: Name,
) -> None:
    await runtime.webhooks.delete_managed(f"{namespace}/{name}", _actor(request))


# --- deliveries ------------------------------------------------------------------------------


@get(
    ROUTE_DELIVERIES,
    opt=READ,
    tags=TAGS,
    summary="List deliveries",
    description="Newest first, each with its latest attempts. Filter by subscription, status, "
    "event type or `event_ref` (riskgate's id of the decision or transaction).",
    responses=problem_responses(401, 403, 422, 429, 503),
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    subscription_id: Annotated[UUID | None, QueryParameter()] = None,
    status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
    event_type: Annotated[EventType | None, QueryParameter()] = None,
    event_ref: Annotated[UUID | None, QueryParameter()] = None,
    cursor: DeliveryCursor = None,
    limit: Limit = 20,
) -> DeliveryPage:
    where = DeliveryFilter(subscription_id, status, event_type, event_ref)
    before = None if cursor is None else parse_message_id(cursor)
    if cursor is not None and before is None:
        raise InvalidField("not a cursor returned by this endpoint", field="cursor")
    return await runtime.webhooks.list_deliveries(_actor(request), where, before, limit)


@get(
    f"{ROUTE_DELIVERIES}/{{delivery_id:str}}",
    opt=READ,
    tags=TAGS,
    summary="Get a delivery",
    responses=problem_responses(401, 403, 404, 429, 503),
)
async def get_delivery(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], delivery_id: DeliveryId
) -> Delivery:
    return await runtime.webhooks.get_delivery(_delivery_id(delivery_id), _actor(request))


@post(
    f"{ROUTE_DELIVERIES}/{{delivery_id:str}}/replay",
    opt=WRITE,
    status_code=202,
    tags=TAGS,
    summary="Replay a delivery",
    description="Sends the same message again (same `webhook-id`) with a fresh retry schedule. "
    "409 while it is still queued.",
    responses=problem_responses(401, 403, 404, 409, 429, 503),
)
async def replay_delivery(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], delivery_id: DeliveryId
) -> Delivery:
    return await runtime.webhooks.replay(_delivery_id(delivery_id), _actor(request))


@post(
    "/v1/webhooks/test",
    opt=IDEMPOTENT_WRITE,
    dto=StrictBody[TestRequest],
    return_dto=None,
    status_code=202,
    tags=TAGS,
    summary="Send a test webhook",
    description="Queues a signed `webhook.test` event to a subscription, or to a bare URL "
    "(then signed with a one-off secret returned here). Requires an `Idempotency-Key`.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def send_test_webhook(
    request: Request[Any, Any, Any], data: JSONBody[TestRequest], runtime: NamedDependency[Runtime]
) -> Response[TestSent]:
    response: Response[Any] = await respond_idempotently(
        request,
        "/v1/webhooks/test",
        data,
        runtime.idempotency,
        lambda ticket, caller, trace: runtime.webhooks.send_test(
            ticket, data, _actor_of(caller), trace[1]
        ),
        runtime.webhooks.replay_stored,
    )
    return response


ROUTES = [
    create_subscription,
    list_subscriptions,
    get_subscription,
    update_subscription,
    delete_subscription,
    rotate_secret,
    recover_subscription,
    sync_managed_subscription,
    get_managed_subscription,
    delete_managed_subscription,
    list_deliveries,
    get_delivery,
    replay_delivery,
    send_test_webhook,
]

"""The client admin API, /v1/admin/clients/{namespace}/{name}: clients owned by ApiClient
resources, for the operator's own client (scope ``clients:admin``) and nobody else.

A client is addressed by its resource's ``<namespace>/<name>`` and named ``<namespace>.<name>``.
The PUT is an idempotent upsert, the operator's natural call on every reconcile; the secret and
API key appear in the answer that creates the client and in a rotation's, never again.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter

from riskgate.auth.repository import ManagedClientView
from riskgate.auth.routes import NO_STORE
from riskgate.auth.schemas import (
    ClientCredentials,
    CredentialsRotated,
    ManagedClient,
    ManagedClientApplied,
    ManagedClientSpec,
    RotateCredentials,
)
from riskgate.auth.scopes import ADMIN_SCOPE
from riskgate.auth.service import ManagedClients, Rotated, pair_of
from riskgate.errors import InvalidField
from riskgate.http.body import StrictBody
from riskgate.http.problems import problem_responses
from riskgate.http.security import caller_of
from riskgate.runtime import Runtime
from riskgate.wire import whole

ADMIN = {"scope": ADMIN_SCOPE}
TAGS = ["clients"]
ONE = "/v1/admin/clients/{namespace:str}/{name:str}"
MAX_CLIENT_NAME = 63
"""clients.name's limit; ``<namespace>.<name>`` must fit in it."""

# Namespaces are DNS labels (no dots): that keeps ``<namespace>.<name>`` unambiguous.
Namespace = Annotated[
    str,
    PathParameter(
        pattern=whole(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"),
        description="The ApiClient resource's namespace",
    ),
]
Name = Annotated[
    str,
    PathParameter(
        pattern=whole(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?"),
        description="The ApiClient resource's name",
    ),
]


def _managed_ref(namespace: str, name: str) -> str:
    if len(namespace) + 1 + len(name) > MAX_CLIENT_NAME:
        raise InvalidField(
            f"the client name {namespace}.{name} would be longer than {MAX_CLIENT_NAME} "
            "characters; shorten the resource's name",
            field="name",
        )
    return f"{namespace}/{name}"


def _wire(view: ManagedClientView) -> dict[str, Any]:
    return {
        "client_id": view.name,
        "managed_ref": view.managed_ref,
        "scopes": sorted(view.scopes),
        "rate_limit": view.rate_limit,
        "status": view.status,
        "api_key_prefixes": view.active_key_prefixes,
        "previous_credentials_expire_at": view.previous_credentials_expire_at,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
    }


def _actor(request: Request[Any, Any, Any]) -> str:
    return caller_of(request).actor


@put(
    ONE,
    opt=ADMIN,
    dto=StrictBody[ManagedClientSpec],
    return_dto=None,
    tags=TAGS,
    summary="Create or update a Kubernetes-managed client",
    description="The operator's sync of an ApiClient resource (`namespace/name`): scopes, rate "
    "limit and status. 201 when it creates the client: with the proposed `credentials`, or with "
    "a generated `client_secret` and `api_key` shown this once; 200 when it updates one (the "
    "same spec again changes nothing; credentials never change here). 409 when a client made "
    "another way already has the name `namespace.name`.",
    responses={
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
        201: ResponseSpec(ManagedClientApplied, description="Created, with its credentials"),
    },
)
async def apply_managed_client(
    request: Request[Any, Any, Any],
    data: JSONBody[ManagedClientSpec],
    runtime: NamedDependency[Runtime],
    namespace: Namespace,
    name: Name,
) -> Response[ManagedClientApplied]:
    applied = await ManagedClients(runtime.pool).apply(
        _managed_ref(namespace, name), data, _actor(request)
    )
    issued = applied.credentials
    if issued is None:
        return Response(ManagedClientApplied(**_wire(applied.view), credentials=None))
    shown = None
    if applied.generated:
        shown = ClientCredentials(
            client_id=issued.client_id, client_secret=issued.client_secret, api_key=issued.api_key
        )
    body = ManagedClientApplied(**_wire(applied.view), credentials=shown)
    return Response(body, status_code=201, headers=NO_STORE)


@get(
    ONE,
    opt=ADMIN,
    tags=TAGS,
    summary="Read a Kubernetes-managed client",
    description="Its scopes, rate limit, status and API key prefixes; never a secret.",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def get_managed_client(
    runtime: NamedDependency[Runtime], namespace: Namespace, name: Name
) -> ManagedClient:
    view = await ManagedClients(runtime.pool).get(_managed_ref(namespace, name))
    return ManagedClient(**_wire(view))


@delete(
    ONE,
    opt=ADMIN,
    tags=TAGS,
    status_code=204,
    summary="Delete a Kubernetes-managed client",
    description="Its secret and API keys stop working (within `RISKGATE_AUTH_CACHE_SECONDS` "
    "for tokens already issued); the name becomes free for a new client.",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def delete_managed_client(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    namespace: Namespace,
    name: Name,
) -> None:
    await ManagedClients(runtime.pool).delete(_managed_ref(namespace, name), _actor(request))


@post(
    f"{ONE}/rotate",
    opt=ADMIN,
    dto=StrictBody[RotateCredentials],
    return_dto=None,
    status_code=200,
    tags=TAGS,
    summary="Rotate a Kubernetes-managed client's credentials",
    description="Returns a new `client_secret` and `api_key`, once, or takes the pair the "
    "caller proposes (then the answer shows neither). The replaced ones keep working until "
    "`previous_credentials_expire_at` (`overlap_seconds` from now), then stop; those an earlier "
    "rotation left in their overlap stop at once. Proposing the current pair again changes "
    "nothing (`rotated: false`): a call whose answer was lost can be repeated.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def rotate_managed_client(
    request: Request[Any, Any, Any],
    data: JSONBody[RotateCredentials],
    runtime: NamedDependency[Runtime],
    namespace: Namespace,
    name: Name,
) -> Response[CredentialsRotated]:
    proposed = pair_of(data.credentials)
    rotated: Rotated = await ManagedClients(runtime.pool).rotate(
        _managed_ref(namespace, name), data.overlap_seconds, _actor(request), proposed
    )
    issued, generated = rotated.credentials, proposed is None
    body = CredentialsRotated(
        client_id=issued.client_id,
        rotated=rotated.rotated,
        client_secret=issued.client_secret if generated else None,
        api_key=issued.api_key if generated else None,
        previous_credentials_expire_at=rotated.previous_expire_at,
    )
    return Response(body, headers=NO_STORE)


ROUTES = [apply_managed_client, get_managed_client, delete_managed_client, rotate_managed_client]

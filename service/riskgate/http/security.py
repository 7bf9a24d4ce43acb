"""Who is calling, and may they: the guard every route passes through.

Each route handler declares ``opt={"scope": "<scope>"}`` or ``opt={"public": True}``. The guard
authenticates the caller (a bearer JWT, or ``X-API-Key``), applies the client's rate limit
(one Redis call), checks the scope, and leaves the caller on the request for the handler.
A route that declares neither is refused: forgetting the scope fails closed, never open.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.types import Message, Scope

from riskgate.auth.service import Caller
from riskgate.errors import InsufficientScope, RateLimited, Unauthenticated
from riskgate.observability.metrics import record_rate_limited
from riskgate.ratelimit.limiter import RateLimitPolicy, policy_headers, rate_limit_headers
from riskgate.runtime import Runtime

SCOPE_OPT = "scope"
PUBLIC_OPT = "public"
_CALLER = "riskgate_caller"
_RATE_HEADERS = "riskgate_rate_limit_headers"


class RouteWithoutScope(RuntimeError):
    """A route declares neither a scope nor ``public``: a programming error, refused."""


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard, installed app-wide."""
    if handler.opt.get(PUBLIC_OPT) or _is_automatic_options(handler):
        return
    required = handler.opt.get(SCOPE_OPT)
    if not isinstance(required, str):
        raise RouteWithoutScope(f"{handler} declares no scope")
    runtime: Runtime = connection.app.state.runtime
    caller = await _authenticate(connection, runtime)
    await _apply_rate_limit(connection, caller, runtime)
    if required not in caller.scopes:
        raise InsufficientScope(required)
    connection.state[_CALLER] = caller


def _is_automatic_options(handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS answer: it only says which methods a path has."""
    return isinstance(handler, HTTPRouteHandler) and handler.http_methods == {"OPTIONS"}


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any], runtime: Runtime) -> Caller:
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            # RFC 6750 3.1: an unsupported scheme gets the bare challenge, no error code.
            raise Unauthenticated("use 'Authorization: Bearer <token>' or X-API-Key", error=None)
        if not token.strip():
            raise Unauthenticated("the bearer token is empty", error="invalid_request")
        return await runtime.authenticator.from_bearer(token.strip())
    api_key = connection.headers.get("x-api-key")
    if api_key is not None:
        return await runtime.authenticator.from_api_key(api_key)
    raise Unauthenticated(
        "send a bearer token (POST /oauth2/token) or an X-API-Key header", error=None
    )


@lru_cache(maxsize=256)
def _policy(text: str, name: str) -> RateLimitPolicy:
    return RateLimitPolicy.parse(text, name=name)


async def _apply_rate_limit(
    connection: ASGIConnection[Any, Any, Any, Any], caller: Caller, runtime: Runtime
) -> None:
    # Two bounded policy names: the configured default, or the client's own ("client").
    if caller.rate_limit:
        policy = _policy(caller.rate_limit, "client")
    else:
        policy = _policy(runtime.settings.rate_limit, "default")
    decision = await runtime.rate_limiter.hit(str(caller.client_id), policy)
    if decision is None:  # Redis is down: serve without limiting (fail open, documented)
        connection.state[_RATE_HEADERS] = policy_headers(policy)
        return
    headers = rate_limit_headers(decision)
    connection.state[_RATE_HEADERS] = headers
    if not decision.allowed:
        record_rate_limited(policy.name)
        raise RateLimited(
            f"rate limit of {policy.limit} requests per {policy.window_seconds} s exceeded",
            headers=headers,
        )


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    """The authenticated caller of a non-public route (set by ``authorize``)."""
    caller: Caller = request.state[_CALLER]
    return caller


async def add_rate_limit_headers(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook: every response of a limited route carries the headers,
    errors included."""
    if message["type"] != "http.response.start":
        return
    headers = scope.get("state", {}).get(_RATE_HEADERS)
    if headers:
        mutable = MutableScopeHeaders.from_message(message)
        for name, value in headers.items():
            if name not in mutable:
                mutable[name] = value

"""Every route is either public (a short, fixed list) or declares a scope that is enforced.

The route list comes from the running Litestar app itself, so a route added without a scope
fails here instead of shipping open. For each protected (method, path): no credential is 401
with a Bearer challenge; a client holding every scope except the route's one is 403 naming
that scope (by API key and by bearer token); a client holding every scope gets past the guard.
The requests carry a broken, oversized body and no Idempotency-Key, so the 401/403 also shows
the guard runs before the body is read.
"""

from __future__ import annotations

import logging
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from conftest import RunningApp, register_client
from riskgate.auth.scopes import SCOPES
from riskgate.http.problems import exception_handlers
from riskgate.http.security import PUBLIC_OPT, SCOPE_OPT, RouteWithoutScope, authorize
from riskgate.settings import Settings

PROBLEMS = "https://riskgate.io/problems/"
PUBLIC_API = {
    ("POST", "/oauth2/token"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/v1/health"),
    ("GET", "/v1/health/ready"),
    ("GET", "/metrics"),
}
DOCS_PREFIX = "/schema"
BODY_METHODS = {"POST", "PUT", "PATCH"}
_PATH_PARAM = re.compile(r"\{([^}]+)\}")


def sample(kind: type) -> str:
    """A syntactically valid value for a path parameter of type ``kind`` that names nothing."""
    samples: dict[type, Callable[[], str]] = {
        uuid.UUID: lambda: str(uuid.uuid4()),
        int: lambda: str(random.randint(10**9, 2**31 - 1)),
        str: lambda: f"no-such-{uuid.uuid4().hex[:8]}",
    }
    assert kind in samples, f"no sample value for path parameters of type {kind}: add one"
    return samples[kind]()


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    handler: HTTPRouteHandler
    parameters: dict[str, type]

    @property
    def public(self) -> bool:
        return bool(self.handler.opt.get(PUBLIC_OPT))

    @property
    def scope(self) -> object:
        return self.handler.opt.get(SCOPE_OPT)

    def url(self) -> str:
        """The template with every path parameter filled with a fresh value of its type."""
        return _PATH_PARAM.sub(lambda m: sample(self.parameters[m[1].split(":")[0]]), self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def is_automatic_options(handler: HTTPRouteHandler) -> bool:
    """The OPTIONS handler Litestar adds to every path; not a route anyone wrote."""
    return handler.http_methods == {"OPTIONS"} and handler.fn.__module__.startswith("litestar.")


def endpoints(litestar: Litestar) -> Iterator[Endpoint]:
    for route in litestar.routes:
        assert isinstance(route, HTTPRoute), f"{route.path}: not HTTP; extend this test for it"
        for handler in route.route_handlers:
            if is_automatic_options(handler):
                continue
            for method in sorted(handler.http_methods):
                types = {name: p.type for name, p in route.path_parameters.items()}
                yield Endpoint(method, route.path, handler, types)


def written_routes(litestar: Litestar) -> list[Endpoint]:
    return list(endpoints(litestar))


def test_the_public_routes_are_exactly_token_jwks_health_metrics_and_docs(
    app: RunningApp,
) -> None:
    public = {(e.method, e.template) for e in written_routes(app.litestar) if e.public}
    docs = {(method, path) for method, path in public if path.startswith(DOCS_PREFIX)}
    assert public - docs == PUBLIC_API
    assert ("GET", "/schema/openapi.json") in docs
    assert {method for method, _ in docs} == {"GET"}


async def test_public_routes_answer_without_credentials(app: RunningApp) -> None:
    for method, path in sorted(PUBLIC_API - {("POST", "/oauth2/token")}):
        response = await app.anonymous.request(method, path)
        assert response.status_code == 200, f"{method} {path}: {response.text}"
    assert (await app.anonymous.get("/schema/openapi.json")).status_code == 200


@dataclass
class Callers:
    """Credentials per scope: everything but that scope, as an API key and as a bearer token."""

    app: RunningApp
    full: dict[str, str]
    _without: dict[str, tuple[dict[str, str], dict[str, str]]]

    async def without(self, scope: str) -> tuple[dict[str, str], dict[str, str]]:
        if scope not in self._without:
            others = " ".join(s for s in SCOPES if s != scope)
            record, issued = await register_client(self.app.runtime, others)
            assert scope not in record.scopes
            # A token of the all-scopes client, narrowed to everything but ``scope``.
            token = await self.app.anonymous.post(
                "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.app.credentials.client_id,
                    "client_secret": self.app.credentials.client_secret,
                    "scope": others,
                },
            )
            assert token.status_code == 200, token.text
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            self._without[scope] = ({"X-API-Key": issued.api_key}, bearer)
        return self._without[scope]


@pytest.fixture
async def callers(app: RunningApp) -> Callers:
    _, issued = await register_client(app.runtime)
    return Callers(app, {"X-API-Key": issued.api_key}, {})


async def send(
    client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str], body: bytes
) -> httpx.Response:
    if endpoint.method not in BODY_METHODS:
        return await client.request(endpoint.method, endpoint.url(), headers=headers)
    return await client.request(
        endpoint.method,
        endpoint.url(),
        # Not JSON, larger than the body limit, and no Idempotency-Key: the handler and body
        # parsing would reject it; the guard must answer first.
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


async def test_every_other_route_declares_a_scope_and_the_guard_enforces_it(
    app: RunningApp, callers: Callers, settings: Settings
) -> None:
    protected = [e for e in written_routes(app.litestar) if not e.public]
    assert {"POST /v1/score", "GET /v1/events", "GET /v1/events/{event_ref:uuid}"} <= {
        str(e) for e in protected
    }
    body = b"{not json" + b"x" * settings.max_body_bytes
    failures: list[str] = []

    def check(ok: bool, endpoint: Endpoint, what: str, response: httpx.Response) -> None:
        if not ok:
            failures.append(f"{endpoint}: {what}; got {response.status_code} {response.text}")

    for endpoint in protected:
        scope = endpoint.scope
        if not isinstance(scope, str) or scope not in SCOPES:
            failures.append(f"{endpoint}: declares scope {scope!r}, not one of SCOPES")
            continue

        anonymous = await send(app.anonymous, endpoint, {}, body)
        challenge = anonymous.headers.get("www-authenticate", "")
        check(anonymous.status_code == 401, endpoint, "no credential must be 401", anonymous)
        check(challenge.startswith("Bearer "), endpoint, "401 needs a Bearer challenge", anonymous)
        check("error=" not in challenge, endpoint, "no credential: no error code", anonymous)
        check(
            anonymous.headers.get("content-type") == "application/problem+json"
            and anonymous.json().get("status") == 401,
            endpoint,
            "401 must be a problem document",
            anonymous,
        )

        for kind, headers in zip(("api key", "bearer"), await callers.without(scope), strict=True):
            denied = await send(app.anonymous, endpoint, headers, body)
            check(denied.status_code == 403, endpoint, f"{kind} without {scope}: 403", denied)
            if denied.status_code == 403:
                check(
                    denied.json()["type"] == PROBLEMS + "insufficient-scope",
                    endpoint,
                    "403 type insufficient-scope",
                    denied,
                )
                check(
                    'error="insufficient_scope"' in denied.headers["www-authenticate"]
                    and f'scope="{scope}"' in denied.headers["www-authenticate"],
                    endpoint,
                    f"403 challenge must name {scope}",
                    denied,
                )

        allowed = await send(app.anonymous, endpoint, callers.full, body)
        check(
            allowed.status_code not in {401, 403} and allowed.status_code < 500,
            endpoint,
            "a client holding every scope gets past the guard",
            allowed,
        )
        if endpoint.method in BODY_METHODS:
            check(
                400 <= allowed.status_code < 500,
                endpoint,
                "past the guard the same body is rejected (so the 401/403 came first)",
                allowed,
            )

    assert not failures, "\n".join(failures)


# --- a route without a scope fails closed --------------------------------------------------------

NAKED_OPTS: list[Any] = [
    pytest.param({}, id="no-opt"),
    pytest.param({PUBLIC_OPT: False}, id="public-false"),
    pytest.param({SCOPE_OPT: None}, id="scope-none"),
    pytest.param({SCOPE_OPT: ["events:read"]}, id="scope-not-a-string"),
]


@pytest.mark.parametrize("opt", NAKED_OPTS)
async def test_a_route_without_a_scope_is_refused_never_open(
    opt: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    reached: list[bool] = []

    @get("/naked", opt=opt)
    async def naked() -> dict[str, str]:
        reached.append(True)
        return {"secret": "data"}

    litestar = Litestar(
        route_handlers=[naked],
        guards=[authorize],
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        debug=False,
        logging_config=None,
    )
    transport = httpx.ASGITransport(app=litestar)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.ERROR, logger="riskgate.http.problems"):
            response = await client.get("/naked")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEMS + "internal-error"
    assert "secret" not in response.text
    assert reached == []
    assert any(
        record.exc_info and isinstance(record.exc_info[1], RouteWithoutScope)
        for record in caplog.records
    )


async def test_options_on_a_route_is_not_a_server_error(app: RunningApp) -> None:
    for path in ("/v1/events", "/v1/score", "/v1/health", "/oauth2/token"):
        for client in (app.anonymous, app.client):
            response = await client.options(path)
            assert response.status_code in {204, 401}, f"OPTIONS {path}: {response.text}"


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_shows_the_challenges_the_api_sends(app: RunningApp) -> None:
    """The README quotes the exact header a caller without a credential gets, and the error
    code a bad one gets; it once promised an error code for a missing credential too."""
    readme = " ".join(README.read_text(encoding="utf-8").split())
    missing = await app.anonymous.get("/v1/events")
    async with app.http_client({"X-API-Key": "rgk_not-a-key"}) as impostor:
        bad = await impostor.get("/v1/events")
    assert (missing.status_code, bad.status_code) == (401, 401)
    bare = missing.headers["www-authenticate"]
    assert "error=" not in bare
    assert f"No credential: 401 with the bare challenge `WWW-Authenticate: {bare}`" in readme
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert 'a bad, expired or revoked one: 401 with `error="invalid_token"`' in readme

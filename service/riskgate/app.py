"""The ASGI application: routes, lifespan, error mapping and OpenAPI, wired in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp

from riskgate import __version__
from riskgate.accounts.routes import account_statement, get_account, open_account
from riskgate.auth.admin_routes import ROUTES as CLIENT_ADMIN_ROUTES
from riskgate.auth.routes import issue_token, jwks
from riskgate.events.routes import get_event, list_events
from riskgate.health.routes import liveness, metrics, readiness
from riskgate.http.openapi import DOCS_PATH, render_plugins, served_document
from riskgate.http.options import complete_allow
from riskgate.http.problems import exception_handlers
from riskgate.http.query import refuse_unknown_query
from riskgate.http.security import add_rate_limit_headers, authorize
from riskgate.observability.logs import configure_logging
from riskgate.observability.middleware import ObservabilityMiddleware
from riskgate.observability.tracing import configure_tracing
from riskgate.runtime import Runtime, open_runtime, stop_this_process
from riskgate.scoring.routes import score_event
from riskgate.settings import Settings
from riskgate.transactions.routes import create_transaction, get_transaction
from riskgate.webhooks.routes import ROUTES as WEBHOOK_ROUTES

ROUTES = [
    issue_token,
    jwks,
    score_event,
    get_event,
    list_events,
    open_account,
    get_account,
    account_statement,
    create_transaction,
    get_transaction,
    liveness,
    readiness,
    metrics,
    *WEBHOOK_ROUTES,
    *CLIENT_ADMIN_ROUTES,
]


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def _openapi() -> OpenAPIConfig:
    """Litestar's generator; ``riskgate.http.openapi`` finishes what it serves."""
    return OpenAPIConfig(
        title="riskgate",
        version=__version__,
        description=(
            "Deterministic risk decisions for bookings and payments, from non-personal signals. "
            "Errors are RFC 9457 problem documents (`application/problem+json`)."
        ),
        path=DOCS_PATH,
        render_plugins=render_plugins(),
        # The docs are public like the health checks; every other route declares its scope.
        openapi_router=Router(
            DOCS_PATH, route_handlers=[], include_in_schema=False, opt={"public": True}
        ),
    )


def openapi_document() -> dict[str, Any]:
    """The document ``/schema/openapi.json`` serves, without a database or settings."""
    litestar = Litestar(
        route_handlers=ROUTES,
        dependencies={"runtime": Provide(_runtime, sync_to_thread=False)},
        openapi_config=_openapi(),
        logging_config=None,  # building a document must not configure the process's logging
    )
    return served_document(litestar)


def create_litestar(
    settings: Settings, on_loop_death: Callable[[], None] = stop_this_process
) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings, on_loop_death) as runtime:
            app.state.runtime = runtime
            yield

    return Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        dependencies={"runtime": Provide(_runtime, sync_to_thread=False)},
        guards=[refuse_unknown_query, authorize],
        before_send=[add_rate_limit_headers, complete_allow],
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        openapi_config=_openapi(),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,
    )


def create_app(settings: Settings) -> ASGIApp:
    """The served ASGI callable: observability wraps everything, 404s and 405s included."""
    return ObservabilityMiddleware(create_litestar(settings))


def app_from_env() -> ASGIApp:
    """uvicorn factory (``riskgate.app:app_from_env``): each worker process builds its own app."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    configure_tracing("riskgate-api")
    return create_app(settings)

"""RFC 9457 problem responses: the one place where errors become HTTP.

Domain errors carry their status and slug; Litestar's own HTTP exceptions (unknown route,
wrong method, oversized body, bad query parameter) and database outages are mapped here too.
Anything else is a bug: it is logged with its traceback and answered with a generic 500 that
never leaks a stack trace or a driver message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from riskgate.db import UNAVAILABLE_ERRORS
from riskgate.errors import (
    DependencyUnavailable,
    MalformedBody,
    OAuthError,
    RiskgateError,
    UnsupportedMediaType,
)
from riskgate.http.body import BODY_PARAMETER, require_json
from riskgate.observability.metrics import record_postgres_unavailable
from riskgate.observability.middleware import client_hung_up
from riskgate.observability.tracing import current_trace_context

logger = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://riskgate.io/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    detail: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document, with riskgate's extension members."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    trace_id: str | None = None
    field: str | None = None
    """Dotted path of the offending field, for validation problems."""
    errors: list[FieldError] | None = None


class OAuthProblem(Problem, frozen=True, kw_only=True):
    """A token-endpoint error: RFC 6749 section 5.2 members plus the RFC 9457 ones."""

    error: str
    error_description: str


def _problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    problem = Problem(
        type=PROBLEM_TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        trace_id=current_trace_context()[0],
        field=field,
        errors=[FieldError(field, detail)] if field else None,
    )
    return Response(
        content=msgspec.json.encode(problem),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _render(request: Request[Any, Any, Any], exc: RiskgateError) -> Response[bytes]:
    return _problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        field=exc.field,
        headers=exc.headers,
    )


def from_domain_error(request: Request[Any, Any, Any], exc: RiskgateError) -> Response[bytes]:
    if exc.status >= 500:
        logger.error("request failed: %s", exc.detail, extra={"problem": exc.slug})
    return _render(request, exc)


def from_oauth_error(request: Request[Any, Any, Any], exc: OAuthError) -> Response[bytes]:
    """RFC 6749 requires ``application/json`` with ``error``; the problem members ride along."""
    body = OAuthProblem(
        type=PROBLEM_TYPE_BASE + exc.slug,
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        instance=request.url.path,
        trace_id=current_trace_context()[0],
        field=exc.field,
        error=exc.error,
        error_description=exc.detail,
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=exc.status,
        media_type="application/json",
        headers={**exc.headers, "Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def from_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    """Litestar's own parameter validation (query, path, header): 422 naming the parameter."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    if first.get("key") == BODY_PARAMETER:
        # An empty body never reaches our decoder: Litestar reports the handler's parameter
        # as missing. Answer as the decoder would have.
        return _render(request, _empty_body_error(request))
    return _problem_response(
        request,
        status=422,
        slug="validation-error",
        title="Request failed validation",
        detail=str(first.get("message") or exc.detail),
        field=first.get("key"),
    )


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


def from_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        if client_hung_up(request.scope):
            # Litestar's "client disconnected prematurely": counted as 499 by the middleware.
            logger.info("client disconnected before the request was complete")
        else:
            logger.error("request failed", exc_info=exc)
        return _internal(request)
    phrase = HTTPStatus(status).phrase
    return _problem_response(
        request,
        status=status,
        slug=_HTTP_SLUGS.get(status, phrase.lower().replace(" ", "-")),
        title=phrase,
        detail=exc.detail or phrase,
        headers=exc.headers,
    )


def from_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # An outage is an expected condition with its own alerting, not a bug: one warning, no trace.
    logger.warning("database unavailable", extra={"error": type(exc).__name__})
    record_postgres_unavailable("request")
    return _render(request, DependencyUnavailable("the database is unavailable; retry shortly"))


def _empty_body_error(request: Request[Any, Any, Any]) -> RiskgateError:
    try:
        require_json(request.headers.get("content-type"))
    except UnsupportedMediaType as exc:
        return exc
    return MalformedBody("the request body is empty; send a JSON object")


def from_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if client_hung_up(request.scope):
        logger.info("client disconnected before the request was complete")
    else:
        logger.error("unhandled error", exc_info=exc)
    return _internal(request)


def _internal(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal error",
        detail="an unexpected error occurred; quote the trace_id when reporting it",
    )


def exception_handlers() -> dict[type[Exception], Callable[..., Response[bytes]]]:
    handlers: dict[type[Exception], Callable[..., Response[bytes]]] = {
        RiskgateError: from_domain_error,
        OAuthError: from_oauth_error,
        ValidationException: from_validation,
        HTTPException: from_http_exception,
        Exception: from_unexpected,
    }
    for error in UNAVAILABLE_ERRORS:
        if issubclass(error, Exception):
            handlers[error] = from_unavailable
    return handlers


def problem_slugs() -> list[str]:
    """Every problem ``type`` slug the service can answer with, sorted."""
    found: set[str] = {*_HTTP_SLUGS.values(), "internal-error"}
    pending: list[type[RiskgateError]] = [RiskgateError]
    while pending:
        error = pending.pop()
        found.add(error.slug)
        pending.extend(error.__subclasses__())
    return sorted(found)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries documenting the problem responses a route can give."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=HTTPStatus(status).phrase,
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


def oauth_error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the token endpoint's RFC 6749 error responses."""
    return {
        status: ResponseSpec(
            data_container=OAuthProblem,
            description=HTTPStatus(status).phrase,
            media_type="application/json",
            generate_examples=False,
        )
        for status in statuses
    }

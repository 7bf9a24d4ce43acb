"""ASGI middleware that gives every HTTP request an id, a trace context, metrics and an access line.

Install it OUTSIDE the Litestar app, as the ASGI callable uvicorn serves::

    app = ObservabilityMiddleware(Litestar(...))

so that requests no route matched (404, 405) are counted too; Litestar's own ``middleware=`` runs
inside routing and never sees them. Litestar writes ``scope["path_template"]`` into the very scope
dict it was given (verified by the tests), which is how the route label is found once the inner
app has returned.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Final

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from riskgate.observability import tracing
from riskgate.observability.logs import request_id_var
from riskgate.observability.metrics import UNMATCHED_ROUTE, observe_http_request

__all__ = [
    "ObservabilityMiddleware",
    "client_hung_up",
    "log_unhandled_exception",
    "new_request_id",
]

access_logger: Final = logging.getLogger("riskgate.access")
error_logger: Final = logging.getLogger("riskgate.http")

_REQUEST_ID_RE: Final = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_INFO: Final = logging.INFO
_CLIENT_CLOSED: Final = 499  # nginx's "client closed request": cancelled before a response
_HUNG_UP: Final = "riskgate.client_hung_up"

_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET: Final = (0x4000 << 64) | (0x8000 << 48)


def client_hung_up(scope: Scope) -> bool:
    """Whether the client disconnected before the response started (e.g. mid-body): whatever
    the app made of the half-read request is not its error, and nobody is there to answer."""
    return bool(scope.get("state", {}).get(_HUNG_UP))


def new_request_id() -> str:
    """A fresh request id: a uuid4 in hex (32 digits), from the fast non-cryptographic PRNG."""
    return f"{(tracing.random_id(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


class ObservabilityMiddleware:
    """Pure ASGI middleware; every non-HTTP scope (lifespan, websocket) passes straight through."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        method: str = scope["method"]
        path = scope["path"]  # read now: Litestar rewrites it for mounted apps

        request_id_raw: bytes | None = None
        traceparent: bytes | None = None
        headers = scope["headers"]
        for name, value in headers:
            if name == b"x-request-id":
                request_id_raw = value
            elif name == b"traceparent":
                traceparent = value
        if request_id_raw is not None and _REQUEST_ID_RE.fullmatch(request_id_raw):
            request_id = request_id_raw.decode("ascii")
        else:
            request_id = new_request_id()
            request_id_raw = request_id.encode("ascii")
        request_id_token = request_id_var.set(request_id)

        server_span = tracing.start_server_span(method, headers)
        if server_span is None:
            trace_id, passive_token = tracing.enter_passive(traceparent)
        else:
            trace_id, passive_token = server_span.trace_id, None

        extra_headers = ((b"x-request-id", request_id_raw), (b"x-trace-id", trace_id.encode()))
        status = 0

        async def receive_watching() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.disconnect" and status == 0:
                # The app waited for more of the request and the client left instead.
                scope.setdefault("state", {})[_HUNG_UP] = True
            return message

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive_watching, send_with_ids)
        except Exception as exc:
            error = exc
            status = 500
            raise
        except BaseException as exc:  # cancelled (shutdown, timeout): not an error of the app
            error = exc
            if status == 0:
                status = _CLIENT_CLOSED
            raise
        finally:
            hung_up = client_hung_up(scope)
            if hung_up:
                status = _CLIENT_CLOSED
            elif status == 0:  # returned without ever starting a response
                status = 500
            duration = time.perf_counter() - start
            route: str | None = scope.get("path_template")
            if route == "":  # Litestar leaves the template empty for mounted ASGI apps
                route = _mount_template(scope)
            if server_span is not None:
                server_span.finish(route, status, error)
            route_label = route if route is not None else UNMATCHED_ROUTE
            observe_http_request(method, route_label, status, duration)
            if isinstance(error, Exception) and not hung_up:
                error_logger.error(
                    "unhandled exception in %s %s",
                    method,
                    route_label,
                    exc_info=error,
                    extra={"method": method, "route": route_label, "path": path},
                )
            if access_logger.isEnabledFor(_INFO):
                # makeRecord + handle skips Logger.findCaller's stack walk (~2 us a line).
                access_logger.handle(
                    access_logger.makeRecord(
                        access_logger.name,
                        _INFO,
                        "",
                        0,
                        "%s %s %d",
                        (method, path, status),
                        None,
                        extra={
                            "method": method,
                            "route": route_label,
                            "path": path,
                            "status": status,
                            "duration_ms": round(duration * 1000.0, 3),
                            "request_id": request_id,
                            "trace_id": trace_id,
                        },
                    )
                )
            if server_span is not None:
                server_span.detach()
            elif passive_token is not None:
                tracing.exit_passive(passive_token)
            request_id_var.reset(request_id_token)


def _mount_template(scope: Scope) -> str | None:
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None)
    if not paths:
        return None
    return f"{min(paths).rstrip('/')}/*"


async def log_unhandled_exception(exc: Exception, scope: Scope) -> None:
    """Litestar ``after_exception`` hook: log server errors with their traceback.

    Litestar turns exceptions into 500 responses itself, so they never reach the middleware, and
    it only logs them in debug mode. Errors that declare a status below 500 (Litestar's
    ``status_code``, or a ``status`` attribute like riskgate's domain errors) are not logged. Not
    needed (it would log twice) when an exception handler for ``Exception`` already logs.
    """
    status = exc.status_code if isinstance(exc, HTTPException) else getattr(exc, "status", 500)
    if isinstance(status, int) and status < 500:
        return
    route = scope.get("path_template") or UNMATCHED_ROUTE
    method = scope.get("method", "")
    error_logger.error(
        "unhandled exception in %s %s",
        method,
        route,
        exc_info=exc,
        extra={"method": method, "route": route, "path": scope.get("path", "")},
    )

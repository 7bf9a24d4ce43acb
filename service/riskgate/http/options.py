"""``OPTIONS`` answers every method of its path.

Litestar builds a path's automatic OPTIONS handler with the first route handler registered for
that path, and keeps that handler when more are registered: ``OPTIONS /v1/webhooks/subscriptions``
would say ``POST`` only, though ``GET`` works too. This ``before_send`` hook sets ``Allow`` from
the app's routes instead, which always know every method of a path.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

_METHODS = "riskgate_methods_by_path"


def _methods_by_path(app: Litestar) -> dict[str, str]:
    if _METHODS not in app.state:
        app.state[_METHODS] = {
            route.path_format: ", ".join(sorted(route.methods))
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }
    methods: dict[str, str] = app.state[_METHODS]
    return methods


async def complete_allow(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    allowed = _methods_by_path(Litestar.from_scope(scope)).get(scope.get("path_template", ""))
    if allowed is not None:
        MutableScopeHeaders.from_message(message)["Allow"] = allowed

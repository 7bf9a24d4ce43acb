"""Query parameters are read as written or refused, never ignored.

A misspelt parameter (``next_cursor=`` for ``cursor=``, ``limt=``) silently ignored returns the
first page again, or an unfiltered list, and looks like success. Every route therefore answers
400 naming the first parameter it does not declare. Litestar also keeps only the last of a
repeated parameter and reads the value ``null`` as "not given" (so ``?source=null`` would list
every source): both are refused as well.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any, get_args

from litestar.connection import ASGIConnection
from litestar.constants import RESERVED_KWARGS
from litestar.enums import ParamType
from litestar.handlers import BaseRouteHandler
from litestar.params import ParameterKwarg

from riskgate.errors import BadRequest, InvalidField, UnknownQueryParameter


@functools.cache
def declared_query_parameters(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameter names ``handler`` reads (as Litestar would bind them); worked out
    once per handler, not on every request that carries a query."""
    dependencies = handler.resolve_dependencies()
    names = set()
    for name, parameter in handler.parsed_fn_signature.parameters.items():
        if name in dependencies or name in RESERVED_KWARGS:
            continue
        kwarg = parameter.kwarg_definition
        if not isinstance(kwarg, ParameterKwarg):
            names.add(name)  # a bare parameter that is not in the path is read from the query
        elif kwarg.param_type is ParamType.QUERY:
            names.add(kwarg.query or name)
    return frozenset(names)


# Litestar would also read a number as a Unix timestamp (``created_before=0.5``).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@functools.cache
def _datetimes(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameters of ``handler`` that are date-times."""
    return frozenset(
        name
        for name, parameter in handler.parsed_fn_signature.parameters.items()
        if datetime in (parameter.annotation, *get_args(parameter.annotation))
    )


async def refuse_unknown_query(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard, installed app-wide (before authentication: it costs nothing)."""
    if not connection.query_params:
        return
    known = declared_query_parameters(handler) - set(connection.path_params)
    for name, values in connection.query_params.dict().items():
        if name not in known:
            raise UnknownQueryParameter(
                f"unknown query parameter {name!r}"
                + (f"; this endpoint takes {', '.join(sorted(known))}" if known else ""),
                field=name,
            )
        if len(values) > 1:
            raise BadRequest(f"the query parameter {name!r} is given more than once", field=name)
        if values[0] == "null":
            raise BadRequest(f"{name}=null is not a value: leave {name} out instead", field=name)
        if name in _datetimes(handler) and not _RFC3339.fullmatch(values[0]):
            raise InvalidField("an RFC 3339 date-time, e.g. 2026-11-23T00:00:00Z", field=name)

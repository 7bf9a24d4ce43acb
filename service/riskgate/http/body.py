"""Strict JSON request bodies.

Litestar's default body handling converts leniently (``"0.5"`` becomes a float) and reports
some errors without the field. Ours decodes with msgspec in strict mode and names the field
in every error, including NaN and Infinity, which are not JSON and so never reach a field
check in a strict parser.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import msgspec
from litestar.dto import MsgspecDTO

from riskgate.errors import InvalidField, MalformedBody, UnsupportedMediaType

T = TypeVar("T", bound=msgspec.Struct)

BODY_PARAMETER = "data"
"""The handler parameter Litestar fills from the body (its reserved name)."""

# msgspec: "Expected `float` <= 1.0 - at `$.signals.delay`"
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:unknown|required) field `(?P<name>[^`]+)`")


def _field_path(path: str, message: str) -> str:
    """``$.signals`` + "unknown field `x`" -> ``signals.x``; ``$.a[0].b`` -> ``a[0].b``."""
    field = path.lstrip(".")
    named = _NAMED.search(message)
    if named:
        field = f"{field}.{named['name']}" if field else named["name"]
    return field or "body"


def invalid_field(exc: msgspec.ValidationError) -> InvalidField:
    match = _AT.match(str(exc))
    assert match is not None  # the pattern accepts any string
    message, path = match["msg"], match["path"] or ""
    return InvalidField(message, field=_field_path(path, message))


def decode_strict(raw: bytes, model: type[T]) -> T:
    """Decode ``raw`` as ``model``; errors name the offending field."""
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        if "[...]" not in str(exc):  # msgspec elides the path for numbers it cannot represent
            raise invalid_field(exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    # Not strict JSON. Re-read it leniently only to find and name the bad field (NaN,
    # Infinity, 1e999); whatever happens, this body is rejected.
    try:
        lenient = json.loads(raw)
    except (ValueError, RecursionError):
        raise MalformedBody("the request body is not valid JSON") from None
    try:
        msgspec.convert(lenient, model)
    except msgspec.ValidationError as exc:
        error = invalid_field(exc)
        error.detail = f"{error.detail} (NaN, Infinity and overflowing numbers are not accepted)"
        raise error from None
    raise MalformedBody("the request body is not strict JSON (NaN, Infinity or an overflow)")


def require_json(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")


class StrictBody(MsgspecDTO[T]):
    """Request-body DTO: documents the struct in OpenAPI, decodes it with ``decode_strict``."""

    def decode_bytes(self, value: bytes) -> Any:
        require_json(self.asgi_connection.headers.get("content-type"))
        return decode_strict(value, self.model_type)

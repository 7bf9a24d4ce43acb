"""Strict JSON request bodies.

Litestar's default body handling converts leniently (``"0.5"`` becomes a float) and reports
some errors without the field. Ours reads every body twice. The standard library's parser first
reads the document as written, each object member in order, so that what a fast parser glosses
over is refused: a key given twice (msgspec, like most parsers, keeps the last one, and a
component in front that keeps the first would act on another request), a lone UTF-16
surrogate (no UTF-8 text can carry it), NUL (no PostgreSQL text can), NaN and Infinity (not
JSON), and money strings spelled any way but plain digits. msgspec then decodes the body into
its struct in strict mode, naming the field in every error.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
from litestar.dto import MsgspecDTO

from riskgate.errors import DuplicateKey, InvalidField, MalformedBody, UnsupportedMediaType

T = TypeVar("T", bound=msgspec.Struct)

BODY_PARAMETER = "data"
"""The handler parameter Litestar fills from the body (its reserved name)."""

# msgspec: "Expected `float` <= 1.0 - at `$.signals.delay`"
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?\Z", re.DOTALL)
_NAMED = re.compile(r"(?:unknown|required) field `(?P<name>[^`]+)`")

# A money string: what a JSON number could spell without a sign or an exponent. Python's
# Decimal() would also take " 10.00 ", "1_000", "+10", "1e3", "NaN" and non-ASCII digits.
_DECIMAL_TEXT = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")

_MAX_NESTING = 32
"""Objects and arrays deeper than this are refused (ours nest three deep): the checks below
recurse, and a body must never be able to exhaust the interpreter's stack."""


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


# --- the document as written ------------------------------------------------------------------


class _Members(list[tuple[str, Any]]):
    """A JSON object as its members in order, a repeated key kept twice."""


@dataclass(frozen=True, slots=True)
class _NotANumber:
    literal: str
    """``NaN``, ``Infinity`` or ``-Infinity``."""


def _ignore_number(_text: str) -> None:
    """Numbers are msgspec's to read; converting them here would only cost time (and fail
    on integers longer than Python's digit limit)."""


def _document(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")  # RFC 8259: JSON exchanged between systems is UTF-8
        return json.loads(
            text,
            object_pairs_hook=_Members,
            parse_constant=_NotANumber,
            parse_int=_ignore_number,
            parse_float=_ignore_number,
        )
    except (ValueError, RecursionError):
        raise MalformedBody("the request body is not valid JSON") from None


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the struct expects at one place in the document, as far as these checks care."""

    members: dict[str, _Shape]
    """An object's known keys (a struct's fields)."""
    other_members: _Shape | None = None
    """Any key's value (a dict's values)."""
    items: _Shape | None = None
    money: bool = False


_UNKNOWN = _Shape({})


def _kinds(kind: mi.Type) -> list[mi.Type]:
    """The types a value of ``kind`` may take (unions flattened, constraints stripped)."""
    if isinstance(kind, mi.Metadata):
        return _kinds(kind.type)
    if isinstance(kind, mi.UnionType):
        return [member for inner in kind.types for member in _kinds(inner)]
    return [kind]


def _shape_of(kind: mi.Type, depth: int = 0) -> _Shape:
    if depth > _MAX_NESTING:  # a recursive struct: no body reaches deeper
        return _UNKNOWN
    members: dict[str, _Shape] = {}
    other = items = None
    money = False
    for option in _kinds(kind):
        if isinstance(option, mi.StructType):
            members |= {f.encode_name: _shape_of(f.type, depth + 1) for f in option.fields}
        elif isinstance(option, mi.DictType):
            other = _shape_of(option.value_type, depth + 1)
        elif isinstance(option, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            items = _shape_of(option.item_type, depth + 1)
        elif isinstance(option, mi.DecimalType):  # money: the only Decimal on the wire
            money = True
    return _Shape(members, other, items, money)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedBody(
            "a string in the body holds a lone UTF-16 surrogate escape, which is not text",
            field=path or None,
        ) from None
    if "\x00" in text:  # valid JSON ("\u0000"), but no PostgreSQL text or jsonb can hold it
        raise InvalidField("must not contain NUL (U+0000)", field=path or "body")


def _check_object(members: _Members, shape: _Shape, path: str, depth: int) -> None:
    seen: set[str] = set()
    for key, value in members:
        _check_text(key, path)
        if key in seen:
            raise DuplicateKey(
                f"the key {key!r} appears more than once in one object", field=_join(path, key)
            )
        seen.add(key)
        inner = shape.members.get(key) or shape.other_members or _UNKNOWN
        _check(value, inner, _join(path, key), depth)


def _check(node: object, shape: _Shape, path: str, depth: int = 0) -> None:
    """Refuse what the struct decoder cannot see; ``shape`` is what the struct expects here."""
    if isinstance(node, _Members | list) and depth >= _MAX_NESTING:
        raise MalformedBody(f"the body nests objects or arrays deeper than {_MAX_NESTING}")
    if isinstance(node, _Members):
        _check_object(node, shape, path, depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check(value, shape.items or _UNKNOWN, f"{path}[{index}]", depth + 1)
    elif isinstance(node, str):
        _check_text(node, path)
        if shape.money and not _DECIMAL_TEXT.fullmatch(node):
            raise InvalidField(
                "a decimal string is ASCII digits with an optional point and decimals, "
                'e.g. "10.50": no sign, exponent, spaces or separators',
                field=path,
            )
    elif isinstance(node, _NotANumber):
        raise InvalidField(f"{node.literal} is not a number JSON allows", field=path or "body")


@functools.cache
def _shape(model: type[msgspec.Struct]) -> _Shape:
    return _shape_of(mi.type_info(model))


def decode_strict(raw: bytes, model: type[T]) -> T:
    """Decode ``raw`` as ``model``; errors name the offending field (or key)."""
    _check(_document(raw), _shape(model), "")
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        raise invalid_field(exc) from None
    except msgspec.DecodeError:
        raise MalformedBody("the request body is not valid JSON") from None


def require_json(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")


class StrictBody(MsgspecDTO[T]):
    """Request-body DTO: documents the struct in OpenAPI, decodes it with ``decode_strict``."""

    def decode_bytes(self, value: bytes) -> Any:
        require_json(self.asgi_connection.headers.get("content-type"))
        return decode_strict(value, self.model_type)

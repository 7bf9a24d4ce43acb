"""The OpenAPI document, finished: what Litestar's generator cannot say, said in one place.

Litestar builds the paths, parameters and summaries from the route handlers. ``finish`` then
rewrites the parts it gets wrong or leaves out, from the same handlers and structs:

* body and response schemas come from msgspec's own JSON Schema generator (readable names,
  ``additionalProperties: false``, every bound), money as the string-or-number it accepts;
* security: the OAuth2 client-credentials scheme with every scope, each operation's scope,
  ``security: []`` on the open routes;
* every status code and response header the service sends, the ``Idempotency-Key`` header,
  the problem ``type`` values, the webhook payloads, tags, operationIds and request examples.

Handlers declare ``opt={"scope": ...}`` (or ``"public"``) and ``"idempotent": True``; nothing
else here needs to be told about a route, so a new route is documented like its neighbours, and
the tests fail when it lacks what only its author can give (an example, a scope).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, get_args, get_origin
from uuid import UUID

import msgspec
import msgspec.inspect as mi
from litestar import Litestar, Request, Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler, get
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.params import FromPath, ParameterKwarg
from litestar.response import File
from litestar.routes import HTTPRoute

from riskgate.auth.scopes import ADMIN_SCOPE, SCOPES
from riskgate.errors import NotFound
from riskgate.http.problems import OAuthProblem, Problem, problem_slugs
from riskgate.money import CURRENCIES, exponent
from riskgate.ratelimit.limiter import API_POLICY_PATTERN
from riskgate.scoring.schemas import DecisionResponse
from riskgate.settings import Settings
from riskgate.transactions.schemas import TransactionResponse
from riskgate.webhooks.schemas import EventType

SCOPE_OPT: Final = "scope"
PUBLIC_OPT: Final = "public"
IDEMPOTENT_OPT: Final = "idempotent"
REF: Final = "#/components/schemas/{name}"
TRACE_HEADER: Final = "X-Trace-Id"
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 (a path, not a password)
MAX_AMOUNT: Final = Decimal(
    next(f.default for f in msgspec.structs.fields(Settings) if f.name == "max_amount")
)
"""``RISKGATE_MAX_AMOUNT``'s default: the document describes a default deployment."""

SCOPE_DESCRIPTIONS: Final = {
    "score:write": "Score events (POST /v1/score)",
    "events:read": "Read events, decisions and audit trails",
    "transactions:write": "Debit accounts (POST /v1/transactions)",
    "accounts:read": "Read accounts, statements and transactions",
    "accounts:write": "Open accounts",
    "webhooks:read": "Read webhook subscriptions and deliveries",
    "webhooks:write": "Manage webhook subscriptions, replay and test deliveries",
    "subscriptions:sync": "Sync Kubernetes-managed subscriptions (the operator's scope)",
    "clients:admin": "Manage Kubernetes-managed API clients (the operator's scope; never granted "
    "through the admin API itself)",
}

TAGS: Final = [
    {"name": "auth", "description": "OAuth 2.0 client credentials and the token signing keys."},
    {"name": "scoring", "description": "Deterministic risk decisions from non-personal signals."},
    {"name": "events", "description": "Scored events with their decisions and audit trails."},
    {"name": "accounts", "description": "Accounts with a balance in one currency."},
    {"name": "transactions", "description": "Debits: approved, declined or flagged for fraud."},
    {
        "name": "webhooks",
        "description": "Signed event delivery: subscriptions, the delivery log, replays, tests.",
    },
    {
        "name": "clients",
        "description": "The admin API for API clients declared as Kubernetes resources.",
    },
    {"name": "health", "description": "Liveness and readiness probes."},
]


IDEMPOTENCY_KEY_PATTERN: Final = "^[\\x21-\\x7e]{1,255}$"


class WebhookTest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``data`` of a ``webhook.test`` event."""

    id: UUID
    subscription_id: UUID | None
    created_at: datetime


WEBHOOK_PAYLOADS: Final[dict[str, type[msgspec.Struct]]] = {
    "decision.created": DecisionResponse,
    "transaction.approved": TransactionResponse,
    "transaction.declined": TransactionResponse,
    "transaction.flagged": TransactionResponse,
    "webhook.test": WebhookTest,
}

# --- headers --------------------------------------------------------------------------------

_INT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}
HEADERS: Final[dict[str, dict[str, Any]]] = {
    TRACE_HEADER: {"description": "The request's trace id (also `trace_id` in bodies)."},
    "X-Request-Id": {"description": "The request's id, as logged."},
    "RateLimit-Policy": {
        "description": 'The client\'s quota: `"<name>";q=<limit>;w=<window seconds>`.'
    },
    "RateLimit": {
        "description": '`"<name>";r=<remaining>;t=<seconds>`; on a 429 `t` equals `Retry-After`.'
    },
    "X-RateLimit-Limit": {"description": "Requests per window.", "schema": _INT},
    "X-RateLimit-Remaining": {"description": "Requests left now.", "schema": _INT},
    "X-RateLimit-Reset": {
        "description": "Seconds until the quota is full again (delta, not a timestamp).",
        "schema": _INT,
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": _INT},
    "WWW-Authenticate": {"description": "The RFC 6750 challenge (`error`, `scope`)."},
    "Location": {"description": "Where the created resource can be read."},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier request.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Cache-Control": {"description": "`no-store` on responses that carry a secret or a token."},
}
_ALWAYS = (TRACE_HEADER, "X-Request-Id")
_RATE = (
    "RateLimit-Policy",
    "RateLimit",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


def _header_components() -> dict[str, Any]:
    return {name: {"schema": _TEXT, **spec} for name, spec in HEADERS.items()}


# --- which handler answers which operation --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    path: str
    method: str
    handler: HTTPRouteHandler

    @property
    def public(self) -> bool:
        return bool(self.handler.opt.get(PUBLIC_OPT))

    @property
    def scope(self) -> str | None:
        scope = self.handler.opt.get(SCOPE_OPT)
        return scope if isinstance(scope, str) else None

    @property
    def idempotent(self) -> bool:
        return bool(self.handler.opt.get(IDEMPOTENT_OPT))

    @property
    def operation_id(self) -> str:
        head, *rest = self.handler.handler_name.split("_")
        return head + "".join(word.capitalize() for word in rest)

    @property
    def body(self) -> type[msgspec.Struct] | None:
        parameter = self.handler.parsed_fn_signature.parameters.get("data")
        return None if parameter is None else _struct(parameter.annotation)

    @property
    def returns(self) -> type[msgspec.Struct] | None:
        return _struct(self.handler.parsed_fn_signature.return_type.annotation)


def _struct(annotation: Any) -> type[msgspec.Struct] | None:
    """The struct behind ``JSONBody[X]``, ``Response[X]`` or ``X``."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
        if get_origin(candidate) is Response:
            return _struct(get_args(candidate)[0])
    return None


def operations(app: Litestar) -> Iterator[Operation]:
    """Every documented (path, method) and its handler, as the document lists them."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema() or handler.http_methods == {"OPTIONS"}:
                continue
            for method in sorted(handler.http_methods):
                yield Operation(route.path_format, method.lower(), handler)


# --- schemas --------------------------------------------------------------------------------


def _money(decimals: int, *, zero: bool) -> dict[str, Any]:
    """What the body decoder and ``riskgate.money`` accept for an amount with this many decimals.

    Digits beyond the currency's decimals may only be zeros (``"10.000"`` is ten pounds).
    """
    # The maximum is a power of ten: every number of fewer digits, or that one exactly.
    top = int(MAX_AMOUNT)
    assert str(MAX_AMOUNT).rstrip("0").rstrip(".").rstrip("0") == "1", "the pattern needs 10 ** k"
    fraction = f"(?:\\.[0-9]{{1,{decimals}}}0*|\\.0+)?" if decimals else "(?:\\.0+)?"
    positive = f"[1-9][0-9]{{0,{len(str(top)) - 2}}}{fraction}|{top}(?:\\.0+)?"
    if decimals:
        positive += f"|0\\.[0-9]{{0,{decimals - 1}}}[1-9]0*"
    text = f"(?:0{fraction}|{positive})" if zero else f"(?:{positive})"
    number: dict[str, Any] = {"type": "number", "maximum": float(MAX_AMOUNT)}
    number["minimum" if zero else "exclusiveMinimum"] = 0
    number["multipleOf"] = 1 if decimals == 0 else float(Decimal(1).scaleb(-decimals))
    return {"oneOf": [{"type": "string", "pattern": f"^{text}$"}, number]}


def _money_body(schema: dict[str, Any], field: str, *, zero: bool) -> dict[str, Any]:
    """A body with ``currency`` and a money ``field``: one alternative per number of decimals,
    so a valid document never holds an amount the currency cannot."""
    by_decimals: dict[int, list[str]] = {}
    for currency in CURRENCIES:
        by_decimals.setdefault(exponent(currency), []).append(currency)
    variants = []
    for decimals, currencies in sorted(by_decimals.items()):
        variant = copy.deepcopy(schema)
        variant["properties"]["currency"] = {"enum": currencies}
        variant["properties"][field] = {
            "description": schema["properties"][field].get("description", ""),
            **_money(decimals, zero=zero),
        }
        variant.pop("title", None)
        variant.pop("description", None)
        variants.append(variant)
    return {"title": schema["title"], "description": _MONEY_NOTE, "oneOf": variants}


_MONEY_NOTE = (
    "Amounts are a JSON number or a decimal string (ASCII digits, an optional point) with at most "
    "the currency's decimals (0 for JPY, ISK, KRW; 3 for BHD, JOD, KWD, OMR, TND; 2 otherwise), "
    "above zero and at most 1,000,000,000 (the default `RISKGATE_MAX_AMOUNT`)."
)


def _struct_schemas(app: Litestar) -> dict[str, Any]:
    structs: set[type[msgspec.Struct]] = {Problem, OAuthProblem, *WEBHOOK_PAYLOADS.values()}
    for operation in operations(app):
        structs |= {kind for kind in (operation.body, operation.returns) if kind is not None}
    _, components = msgspec.json.schema_components(
        sorted(structs, key=lambda kind: kind.__name__), ref_template=REF
    )
    _datetimes(components, _nested(structs))
    return _refine(components)


def _nested(structs: set[type[msgspec.Struct]]) -> set[type[msgspec.Struct]]:
    """``structs`` and every struct their fields hold."""
    found: set[type[msgspec.Struct]] = set()
    pending = [mi.type_info(struct) for struct in structs]
    while pending:
        kind = pending.pop()
        if isinstance(kind, mi.StructType) and kind.cls not in found:
            found.add(kind.cls)
            pending.extend(field.type for field in kind.fields)
        elif isinstance(kind, mi.UnionType):
            pending.extend(kind.types)
        elif isinstance(kind, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            pending.append(kind.item_type)
        elif isinstance(kind, mi.Metadata):
            pending.append(kind.type)
    return found


_ACTIONS_NEED_DECISIONS: Final = [
    {"properties": {"actions": {"maxItems": 0}}},
    {"properties": {"event_types": {"contains": {"const": "decision.created"}}}},
]
"""An ``actions`` filter only applies to ``decision.created`` events, so it needs them."""


def _refine(components: dict[str, Any]) -> dict[str, Any]:
    """Constraints msgspec cannot see: those the services check by hand."""
    if "SubscriptionUpdate" in components and "SubscriptionCreate" in components:
        created = components["SubscriptionCreate"]["properties"]
        update = components["SubscriptionUpdate"]
        for field in ("url", "event_types", "actions"):
            update["properties"][field] = created[field]
        update["minProperties"] = 1
    for name in ("SubscriptionCreate", "SubscriptionUpdate", "ManagedSubscriptionSync"):
        if name in components:
            components[name]["anyOf"] = _ACTIONS_NEED_DECISIONS
    if "ManagedClientSpec" in components:
        client = components["ManagedClientSpec"]["properties"]
        # Any scope but the admin API's own, which a declared client can never be granted.
        grantable = [scope for scope in SCOPES if scope != ADMIN_SCOPE]
        client["scopes"]["items"] = {"type": "string", "enum": grantable}
        client["rate_limit"] = {
            "anyOf": [{"type": "string", "pattern": API_POLICY_PATTERN}, {"type": "null"}]
        }
    if "TestRequest" in components:
        test = components["TestRequest"]
        url = components["SubscriptionCreate"]["properties"]["url"]
        test["properties"]["url"] = {"anyOf": [url, {"type": "null"}]}
        # Exactly one of the two is given (not null).
        test["oneOf"] = [
            {"required": [name], "properties": {name: {"type": "string"}}}
            for name in ("subscription_id", "url")
        ]
    for name, field, zero in (
        ("DebitRequest", "amount", False),
        ("OpenAccount", "opening_balance", True),
    ):
        if name in components:
            components[name] = _money_body(components[name], field, zero=zero)
    problem = components["Problem"]["properties"]
    problem["type"] = {
        "description": "One of riskgate's problem types: `https://riskgate.io/problems/<slug>`.",
        "enum": [f"https://riskgate.io/problems/{slug}" for slug in problem_slugs()],
    }
    components["OAuthProblem"]["properties"]["type"] = problem["type"]
    return components


def _datetimes(components: dict[str, Any], structs: set[type[msgspec.Struct]]) -> None:
    """msgspec documents a ``datetime`` as a bare string: say it is RFC 3339 (``date-time``)."""
    for struct in structs:
        info = mi.type_info(struct)
        assert isinstance(info, mi.StructType)
        properties = components.get(struct.__name__, {}).get("properties", {})
        for field in info.fields:
            if field.encode_name in properties and _is_datetime(field.type):
                _format_strings(properties[field.encode_name])


def _is_datetime(kind: mi.Type) -> bool:
    if isinstance(kind, mi.UnionType):
        return any(_is_datetime(member) for member in kind.types)
    return isinstance(kind, mi.DateTimeType)


def _format_strings(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string":
        schema["format"] = "date-time"
    for member in schema.get("anyOf", []):
        _format_strings(member)


# --- operations -----------------------------------------------------------------------------


def _statuses(operation: Operation, declared: dict[str, Any]) -> set[int]:
    statuses = {int(code) for code in declared}
    statuses.add(400)  # unknown query parameters, on every route
    if operation.path == TOKEN_PATH:
        statuses |= {429, 503}
    if not operation.public:
        statuses |= {401, 403, 429, 503}
    if operation.body is not None:
        statuses |= {413, 415, 422}
    if operation.idempotent:
        statuses |= {409, 422}
    if "{" in operation.path or operation.handler.parsed_fn_signature.parameters.keys() & {
        "limit",
        "cursor",
    }:
        statuses.add(422)
    return statuses


def _headers_for(operation: Operation, status: int, problem: bool) -> dict[str, Any]:
    names: list[str] = list(_ALWAYS)
    if not operation.public and status != 401:  # limits are per client: known once authenticated
        names += _RATE
    if status in (401, 403):
        names.append("WWW-Authenticate")
    if problem and (status in (429, 503) or (status == 409 and operation.idempotent)):
        names.append("Retry-After")
    if operation.idempotent and status < 300:
        names += ["Location", "Idempotent-Replayed"]
    if operation.path == TOKEN_PATH or (status < 300 and _carries_secret(operation.returns)):
        names.append("Cache-Control")
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _carries_secret(kind: type[msgspec.Struct] | None) -> bool:
    return kind is not None and "secret" in kind.__struct_fields__


def _problem_response(status: int, oauth: bool) -> dict[str, Any]:
    if oauth:
        content = {"application/json": {"schema": {"$ref": REF.format(name="OAuthProblem")}}}
    else:
        content = {"application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}}
    return {"description": HTTPStatus(status).phrase, "content": content}


def _responses(operation: Operation, spec: dict[str, Any]) -> dict[str, Any]:
    declared: dict[str, Any] = spec.get("responses", {})
    oauth = operation.path == TOKEN_PATH
    responses: dict[str, Any] = {}
    for status in sorted(_statuses(operation, declared)):
        response = declared.get(str(status))
        problem = status >= 400 and not (response is not None and _is_own_body(operation, response))
        if problem:
            response = _problem_response(status, oauth and status in (400, 401))
        else:
            response = _success(operation, status, response or {})
        response["headers"] = _headers_for(operation, status, problem)
        responses[str(status)] = response
    return responses


def _is_own_body(operation: Operation, response: dict[str, Any]) -> bool:
    """An error status the handler answers with its own struct (readiness's 503), not a problem
    (Litestar also declares a generic 400 of its own, which is ours to replace)."""
    kind = operation.returns
    return kind is not None and f"/{kind.__name__}" in str(response.get("content", {}))


def _success(operation: Operation, status: int, response: dict[str, Any]) -> dict[str, Any]:
    response = {"description": response.get("description") or HTTPStatus(status).phrase}
    kind = operation.returns
    if kind is not None:
        media = "application/json"
        response["content"] = {media: {"schema": {"$ref": REF.format(name=kind.__name__)}}}
    return response


def _parameters(operation: Operation, spec: dict[str, Any]) -> list[dict[str, Any]]:
    parameters = [_clean_parameter(p) for p in spec.get("parameters", [])]
    for parameter in parameters:
        _declared_bounds(operation, parameter)
    if operation.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "1-255 printable ASCII characters, unique per request you mean "
                "(kept 72 h): a retry with the same key and body replays the stored response.",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                "example": "7d1c7e8e-booking-1001",
            }
        )
    for parameter in parameters:
        example = PARAMETER_EXAMPLES.get(parameter["name"])
        if example is not None and parameter["in"] != "header":
            parameter["example"] = example
    return parameters


_BOUNDS: Final = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "min_length": "minLength",
    "max_length": "maxLength",
    "pattern": "pattern",
}


def _declared_bounds(operation: Operation, parameter: dict[str, Any]) -> None:
    """The handler's own bounds, as it checks them: Litestar drops falsy ones (``ge=0``)."""
    declared = operation.handler.parsed_fn_signature.parameters.get(parameter["name"])
    kwarg = declared.kwarg_definition if declared is not None else None
    if not isinstance(kwarg, ParameterKwarg):
        return
    for attribute, keyword in _BOUNDS.items():
        value = getattr(kwarg, attribute, None)
        if value is not None:
            parameter["schema"][keyword] = value


def _clean_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """Litestar spells an optional query value as ``oneOf: [X, null]`` beside X's bounds; a
    query string cannot carry null, so the parameter is X, with its bounds, and optional."""
    parameter = {
        key: value
        for key, value in parameter.items()
        if key not in ("deprecated", "allowEmptyValue", "allowReserved")
    }
    schema = dict(parameter["schema"])
    options = schema.pop("oneOf", None)
    if options:
        schema = {**next(o for o in options if o.get("type") != "null"), **schema}
    if isinstance(schema.get("type"), list):
        schema["type"] = next(t for t in schema["type"] if t != "null")
        schema["enum"] = [value for value in schema.get("enum", []) if value is not None]
    for bound in ("minimum", "maximum"):
        if isinstance(schema.get(bound), float) and schema.get("type") == "integer":
            schema[bound] = (
                int(Decimal(repr(schema[bound]))) if schema[bound] < 2**53 else 2**63 - 1
            )
    parameter["schema"] = schema
    return parameter


def _security(operation: Operation) -> list[dict[str, list[str]]]:
    if operation.public or operation.scope is None:
        return []
    return [{"oauth2": [operation.scope]}, {"apiKey": []}]


def _operation(operation: Operation, spec: dict[str, Any]) -> dict[str, Any]:
    finished = {
        key: value
        for key, value in spec.items()
        if key not in ("deprecated", "requestBody", "parameters", "responses", "security")
    }
    finished["operationId"] = operation.operation_id
    finished["security"] = _security(operation)
    if operation.scope:
        finished["description"] = (
            f"{spec.get('description', '')}\n\nRequires the scope `{operation.scope}`.".strip()
        )
    parameters = _parameters(operation, spec)
    if parameters:
        finished["parameters"] = parameters
    body = operation.body
    if body is not None:
        example = REQUEST_EXAMPLES.get(body.__name__)
        media: dict[str, Any] = {"schema": {"$ref": REF.format(name=body.__name__)}}
        if example is not None:
            media["example"] = example
        finished["requestBody"] = {"required": True, "content": {"application/json": media}}
    elif "requestBody" in spec:
        finished["requestBody"] = spec["requestBody"]
    finished["responses"] = _responses(operation, spec)
    return finished


# --- examples -------------------------------------------------------------------------------

REQUEST_EXAMPLES: Final[dict[str, Any]] = {
    "ScoreRequest": {
        "event_id": "bk-1001",
        "source": "flight",
        "signals": {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0},
    },
    "OpenAccount": {"customer_ref": "cust_7f3a91", "currency": "GBP", "opening_balance": "1000.00"},
    "DebitRequest": {"account_id": 1, "amount": "25.00", "currency": "GBP"},
    "SubscriptionCreate": {
        "url": "https://hooks.example.com/riskgate",
        "event_types": ["decision.created", "transaction.flagged"],
        "actions": ["hold"],
    },
    "SubscriptionUpdate": {"paused": True},
    "RecoverRequest": {"since": "2026-11-23T00:00:00Z"},
    "ManagedSubscriptionSync": {
        "url": "https://hooks.example.com/riskgate",
        "event_types": ["decision.created"],
        "clients": ["checkout"],
        "secrets": [{"value": "whsec_" + "A" * 43 + "="}],
    },
    "TestRequest": {"url": "https://hooks.example.com/riskgate"},
    "ManagedClientSpec": {"scopes": ["score:write", "events:read"], "rate_limit": "100/60s"},
    "RotateCredentials": {"overlap_seconds": 86400},
}
"""One request body per body struct; the tests decode each with the server's own decoder."""

PARAMETER_EXAMPLES: Final[dict[str, Any]] = {
    "event_ref": "0192f0c1-6c1e-7a51-9e5b-3f7c1a2b4c5d",
    "transaction_id": "0192f0c1-6c1e-7a51-9e5b-3f7c1a2b4c5e",
    "subscription_id": "0192f0c1-6c1e-7a51-9e5b-3f7c1a2b4c5f",
    "delivery_id": "msg_0192f0c16c1e7a519e5b3f7c1a2b4c60",
    "account_id": 1,
    "namespace": "payments",
    "name": "checkout-hooks",
    "limit": 20,
    "action": "review",
    "source": "flight",
    "event_id": "bk-1001",
    "created_after": "2026-11-23T00:00:00Z",
    "created_before": "2026-11-24T00:00:00Z",
    "status": "exhausted",
    "event_type": "decision.created",
    "overlap_seconds": 86400,
}


# --- webhooks -------------------------------------------------------------------------------


def _webhooks() -> dict[str, Any]:
    signature = {
        "webhook-id": "`msg_` + 32 hex digits, stable across retries and replays",
        "webhook-timestamp": "Unix seconds",
        "webhook-signature": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` (Standard Webhooks)",
        "Riskgate-Signature": "`t=<unix>,v1=<hex HMAC-SHA256 of timestamp.body>` "
        "(the name is configurable)",
        "traceparent": "W3C trace context of the request that caused the event",
    }
    parameters = [
        {
            "name": name,
            "in": "header",
            "required": name != "traceparent",
            "description": text,
            "schema": _TEXT,
        }
        for name, text in signature.items()
    ]
    hooks: dict[str, Any] = {}
    for event_type in get_args(EventType):
        payload = WEBHOOK_PAYLOADS[event_type].__name__
        envelope = {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": event_type},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"$ref": REF.format(name=payload)},
            },
        }
        hooks[event_type] = {
            "post": {
                "operationId": "on"
                + "".join(p.capitalize() for p in re.split(r"[._]", event_type)),
                "summary": f"`{event_type}` delivered to a subscription",
                "tags": ["webhooks"],
                "parameters": parameters,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": envelope}},
                },
                "responses": {
                    "2XX": {"description": "Received; any 2xx counts, answer quickly"},
                    "410": {"description": "Gone: riskgate disables the subscription"},
                },
            }
        }
    return hooks


# --- the document ---------------------------------------------------------------------------


_METHOD_ORDER: Final = {m: i for i, m in enumerate(("get", "put", "post", "patch", "delete"))}


def finish(document: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """The served and committed document: Litestar's, completed (see the module docstring)."""
    paths: dict[str, Any] = {}
    # Sorted: Litestar's own order of methods within a path varies from run to run.
    for operation in sorted(operations(app), key=lambda op: (op.path, _METHOD_ORDER[op.method])):
        spec = document["paths"][operation.path][operation.method]
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, spec)
    return {
        "openapi": "3.1.0",
        "info": {**document["info"], "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": TAGS,
        "paths": paths,
        "webhooks": _webhooks(),
        "components": {
            "schemas": _struct_schemas(app),
            "headers": _header_components(),
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "description": "Client credentials (RFC 6749 4.4); the token is a JWT.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": TOKEN_PATH,
                            "scopes": {scope: SCOPE_DESCRIPTIONS[scope] for scope in SCOPES},
                        }
                    },
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "A client's API key: it carries all of that client's scopes.",
                },
            },
        },
    }


_STATE_KEY: Final = "riskgate_openapi_document"


def served_document(app: Litestar) -> dict[str, Any]:
    """The finished document of ``app``, built once (the routes never change while it runs)."""
    if _STATE_KEY not in app.state:
        app.state[_STATE_KEY] = finish(app.openapi_schema.to_schema(), app)
    document: dict[str, Any] = app.state[_STATE_KEY]
    return document


class FinishedJson(JsonRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, served_document(request.app))


class FinishedYaml(YamlRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, served_document(request.app))


DOCS_PATH: Final = "/schema"
ASSETS_PATH: Final = f"{DOCS_PATH}/assets"
_ASSETS: Final = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
)


def _swagger_ui_directory() -> str:
    """Swagger UI's own files, from the pinned ``swagger-ui-py`` package (never a CDN)."""
    import swagger_ui

    return str(Path(swagger_ui.__file__).parent / "static")


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI with every asset served by riskgate itself, so the docs work offline."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
            path=["/", "/swagger"],
            init_oauth={"scopes": " ".join(SCOPES)},
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, served_document(request.app))

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(docs_asset)


_MEDIA_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@get(
    "/assets/{name:str}",
    opt={PUBLIC_OPT: True},
    include_in_schema=False,
    sync_to_thread=False,
    cache_control=CacheControlHeader(public=True, max_age=86400),
)
def docs_asset(name: FromPath[str]) -> File:
    """One of the few Swagger UI files the docs page loads; nothing else of the package."""
    if name not in _ASSETS:
        raise NotFound(f"no docs asset {name}")
    path = Path(_swagger_ui_directory()) / name
    return File(path, media_type=_MEDIA_TYPES[path.suffix], content_disposition_type="inline")


def render_plugins() -> list[OpenAPIRenderPlugin]:
    return [OfflineSwagger(), FinishedJson(), FinishedYaml()]

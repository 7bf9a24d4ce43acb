"""POST /oauth2/token and GET /.well-known/jwks.json."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from riskgate.auth.schemas import Jwks, TokenResponse
from riskgate.errors import OAuthInvalidClient, OAuthInvalidRequest, OAuthUnsupportedGrantType
from riskgate.http.problems import oauth_error_responses
from riskgate.runtime import Runtime

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_PARAM = 512


def _form_schema() -> Schema:
    text = Schema(type=OpenAPIType.STRING)
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["grant_type"],
        properties={
            "grant_type": Schema(type=OpenAPIType.STRING, enum=["client_credentials"]),
            "client_id": text,
            "client_secret": text,
            "scope": Schema(type=OpenAPIType.STRING, description="space-separated subset"),
        },
    )


@dataclass
class _TokenOperation(Operation):
    """Documents the form body, which the handler parses itself (RFC 6749 is strict about it)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True, content={FORM: OpenAPIMediaType(schema=_form_schema())}
        )


@dataclass(frozen=True, slots=True)
class TokenRequest:
    grant_type: str
    client_id: str
    client_secret: str
    scope: str | None
    basic: bool


def _form(body: bytes, content_type: str | None) -> dict[str, str]:
    if (content_type or "").split(";", 1)[0].strip().lower() != FORM:
        raise OAuthInvalidRequest(f"send the token request as {FORM}")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise OAuthInvalidRequest("the form body is malformed") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 3.2: parameters must not be repeated
            raise OAuthInvalidRequest(f"parameter {name} is repeated", field=name)
        if len(value) > _MAX_PARAM:
            raise OAuthInvalidRequest(f"parameter {name} is too long", field=name)
        if "\x00" in name or "\x00" in value:  # %00: no PostgreSQL text can hold it
            raise OAuthInvalidRequest("the form body holds a NUL character", field=name or None)
        form[name] = value
    return form


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        client_id, _, secret = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthInvalidClient("malformed HTTP Basic credentials", basic_challenge=True) from None
    # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
    client_id, secret = unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    if "\x00" in client_id + secret:
        raise OAuthInvalidClient("malformed HTTP Basic credentials", basic_challenge=True)
    return client_id, secret


def parse_token_request(body: bytes, headers: dict[str, str]) -> TokenRequest:
    form = _form(body, headers.get("content-type"))
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthInvalidRequest("grant_type is required", field="grant_type")
    if grant_type != "client_credentials":
        raise OAuthUnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    basic = _basic_credentials(headers.get("authorization"))
    in_body = "client_id" in form or "client_secret" in form
    if basic and in_body:
        raise OAuthInvalidRequest("use either HTTP Basic or body credentials, not both")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not secret:
        raise OAuthInvalidClient(
            "client credentials are required", basic_challenge=basic is not None
        )
    return TokenRequest(grant_type, client_id, secret, form.get("scope"), basic is not None)


@post(
    "/oauth2/token",
    opt={"public": True},
    status_code=200,
    tags=["auth"],
    summary="Get an access token (client credentials)",
    description=(
        "OAuth 2.0 client credentials grant (RFC 6749 section 4.4). Authenticate with HTTP Basic "
        "or `client_id`/`client_secret` in the form body. Returns an RFC 9068 JWT access token. "
        "Errors follow RFC 6749 section 5.2 (`error`, `error_description`) and also carry the "
        "RFC 9457 members."
    ),
    operation_class=_TokenOperation,
    responses=oauth_error_responses(400, 401, 429, 503),
)
async def issue_token(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> Response[TokenResponse]:
    token_request = parse_token_request(await request.body(), dict(request.headers))
    token, scope = await runtime.tokens.issue(
        token_request.client_id,
        token_request.client_secret,
        token_request.scope,
        basic=token_request.basic,
        # The peer, or the client a trusted proxy names (uvicorn's --forwarded-allow-ips).
        address=request.client.host if request.client else "",
    )
    body = TokenResponse(
        access_token=token, token_type="Bearer", expires_in=runtime.tokens.ttl_seconds, scope=scope
    )
    return Response(body, headers=NO_STORE)


@get(
    "/.well-known/jwks.json",
    opt={"public": True},
    tags=["auth"],
    summary="Public keys that sign access tokens",
    description="The current key and, during a rotation, the previous one (RFC 7517 JWK Set).",
)
async def jwks(runtime: NamedDependency[Runtime]) -> Response[Jwks]:
    keys = msgspec.convert(runtime.signing_keys.jwks(), Jwks)
    return Response(keys, headers={"Cache-Control": "public, max-age=300"})

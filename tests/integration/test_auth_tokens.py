"""POST /oauth2/token, GET /.well-known/jwks.json, and what bearer tokens and API keys may do.

Forged tokens are built here byte by byte (header, payload, signature), so each attack is
exactly the one named: the session's own signing key signs the "valid except for one thing"
tokens, and a control test proves that the same builder with nothing changed is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import RunningApp, register_client, running_app, settings_with
from riskgate.auth.repository import ClientRecord
from riskgate.auth.scopes import SCOPES
from riskgate.auth.service import ClientAdmin
from riskgate.auth.signing import REQUIRED_CLAIMS, generate_private_key_pem, thumbprint
from riskgate.settings import Settings

TOKEN = "/oauth2/token"
JWKS = "/.well-known/jwks.json"
PROTECTED = "/v1/events"
PROBLEMS = "https://riskgate.io/problems/"
GRANT = {"grant_type": "client_credentials"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
LIMITED_SCOPES = "events:read score:write"
# A key left out of a token's header or claims entirely.
MISSING: Any = object()


# --- helpers ------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_part(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 2.3.1: each part form-urlencoded, then HTTP Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


def jwt_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(unb64url(token.split(".")[1]))
    return claims


async def issue(
    client: httpx.AsyncClient, client_id: str, secret: str, **form: str
) -> httpx.Response:
    return await client.post(
        TOKEN, data={**GRANT, "client_id": client_id, "client_secret": secret, **form}
    )


async def access_token(client: httpx.AsyncClient, client_id: str, secret: str, **form: str) -> str:
    response = await issue(client, client_id, secret, **form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def assert_invalid_token(response: httpx.Response) -> None:
    """RFC 6750 3.1 challenge plus an RFC 9457 body."""
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEMS + "invalid-token"
    assert problem["status"] == 401
    assert problem["detail"]


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


@dataclass(frozen=True)
class Forger:
    """Builds compact JWS tokens by hand for one client, signed with the session key."""

    key: Ed25519PrivateKey
    kid: str
    caller: ClientRecord
    settings: Settings

    def header(self, **changes: Any) -> dict[str, Any]:
        return _apply({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid}, changes)

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.settings.jwt_issuer,
            "sub": str(self.caller.id),
            "aud": self.settings.jwt_audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "client_id": self.caller.name,
            "scope": " ".join(SCOPES),
        }
        return _apply(base, changes)

    def signed(
        self,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> str:
        signing_input = (
            f"{encode_part(header or self.header())}.{encode_part(claims or self.claims())}"
        )
        signature = (key or self.key).sign(signing_input.encode())
        return f"{signing_input}.{b64url(signature)}"


def _apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {name: value for name, value in merged.items() if value is not MISSING}


@pytest.fixture(scope="module")
async def forger(app: RunningApp, settings: Settings) -> Forger:
    kids = [key["kid"] for key in (await app.anonymous.get(JWKS)).json()["keys"]]
    assert len(kids) == 1
    return Forger(load_private_key(settings.jwt_signing_key_file), kids[0], app.caller, settings)


@dataclass(frozen=True)
class TokenClients:
    """A client holding only two scopes, with a secret full of characters Basic must encode,
    and a disabled client."""

    limited: ClientRecord
    limited_secret: str
    disabled: ClientRecord
    disabled_secret: str


ODD_SECRET = "s3cr:et +%/é&=?#ü"


@pytest.fixture(scope="module")
async def token_clients(app: RunningApp) -> TokenClients:
    limited, _ = await register_client(app.runtime, LIMITED_SCOPES, secret=ODD_SECRET)
    disabled, disabled_issued = await register_client(app.runtime)
    await ClientAdmin(app.runtime.pool).set_active(disabled.name, False)
    return TokenClients(limited, ODD_SECRET, disabled, disabled_issued.client_secret)


# --- token endpoint: happy paths -----------------------------------------------------------------


async def test_form_credentials_get_an_rfc9068_access_token(
    app: RunningApp, settings: Settings
) -> None:
    before = int(time.time())
    response = await issue(app.anonymous, app.credentials.client_id, app.credentials.client_secret)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].split(";")[0] == "application/json"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert body["scope"] == " ".join(SCOPES), "no scope asked: every scope the client holds"

    token = body["access_token"]
    header = jwt_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "EdDSA"
    jwks = (await app.anonymous.get(JWKS)).json()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}

    claims = jwt_claims(token)
    assert claims["iss"] == settings.jwt_issuer
    assert claims["aud"] == settings.jwt_audience
    assert claims["sub"] == str(app.caller.id)
    assert claims["client_id"] == app.caller.name
    assert claims["scope"] == body["scope"]
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    assert len(claims["jti"]) >= 16

    assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200


async def test_every_token_has_its_own_jti(app: RunningApp) -> None:
    tokens = [
        await access_token(app.anonymous, app.credentials.client_id, app.credentials.client_secret)
        for _ in range(3)
    ]
    assert len({jwt_claims(token)["jti"] for token in tokens}) == 3


async def test_jwks_publishes_the_public_key_that_verifies_issued_tokens(app: RunningApp) -> None:
    response = await app.anonymous.get(JWKS)
    assert response.status_code == 200
    [jwk] = response.json()["keys"]
    assert {k: jwk[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert "d" not in jwk, "never the private part"
    token = await access_token(
        app.anonymous, app.credentials.client_id, app.credentials.client_secret
    )
    public_key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public_key, algorithms=["EdDSA"], audience="riskgate-api")
    assert claims["sub"] == str(app.caller.id)


async def test_basic_credentials_are_form_urlencoded_before_base64(
    app: RunningApp, token_clients: TokenClients
) -> None:
    name = token_clients.limited.name
    response = await app.anonymous.post(TOKEN, data=GRANT, headers=basic(name, ODD_SECRET))
    assert response.status_code == 200, response.text
    assert jwt_claims(response.json()["access_token"])["client_id"] == name

    # The same secret in the form body (urlencoded by the form itself) works too.
    assert (await issue(app.anonymous, name, ODD_SECRET)).status_code == 200


async def test_scope_parameter_narrows_the_token(app: RunningApp) -> None:
    response = await issue(
        app.anonymous,
        app.credentials.client_id,
        app.credentials.client_secret,
        scope="score:write events:read",
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "score:write events:read"
    token = response.json()["access_token"]
    assert jwt_claims(token)["scope"] == "score:write events:read"

    narrow = await access_token(
        app.anonymous, app.credentials.client_id, app.credentials.client_secret, scope="score:write"
    )
    denied = await app.anonymous.get(PROTECTED, headers=bearer(narrow))
    assert denied.status_code == 403
    assert denied.json()["type"] == PROBLEMS + "insufficient-scope"
    assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200


async def test_empty_scope_parameter_means_every_scope_of_the_client(
    app: RunningApp, token_clients: TokenClients
) -> None:
    response = await issue(app.anonymous, token_clients.limited.name, ODD_SECRET, scope="")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "score:write events:read"


# --- token endpoint: bad inputs ------------------------------------------------------------------

Request = Callable[[TokenClients], dict[str, Any]]


def form(**fields: str) -> Request:
    return lambda _: {"data": fields}


def raw(content: str | bytes, content_type: str = FORM["content-type"]) -> Request:
    return lambda _: {"content": content, "headers": {"content-type": content_type}}


def limited_form(**extra: str) -> Request:
    return lambda c: {
        "data": {**GRANT, "client_id": c.limited.name, "client_secret": ODD_SECRET, **extra}
    }


BAD_TOKEN_REQUESTS = [
    pytest.param(
        lambda c: {"data": {**GRANT, "client_id": c.limited.name, "client_secret": "wrong"}},
        401,
        "invalid_client",
        False,
        id="wrong-secret-in-body",
    ),
    pytest.param(
        lambda c: {"data": GRANT, "headers": basic(c.limited.name, "wrong")},
        401,
        "invalid_client",
        True,
        id="wrong-secret-basic",
    ),
    pytest.param(
        form(**GRANT, client_id="no-such-client", client_secret="whatever"),
        401,
        "invalid_client",
        False,
        id="unknown-client-in-body",
    ),
    pytest.param(
        lambda _: {"data": GRANT, "headers": basic("no-such-client", "whatever")},
        401,
        "invalid_client",
        True,
        id="unknown-client-basic",
    ),
    pytest.param(
        lambda c: {
            "data": {**GRANT, "client_id": c.disabled.name, "client_secret": c.disabled_secret}
        },
        401,
        "invalid_client",
        False,
        id="disabled-client-in-body",
    ),
    pytest.param(
        lambda c: {"data": GRANT, "headers": basic(c.disabled.name, c.disabled_secret)},
        401,
        "invalid_client",
        True,
        id="disabled-client-basic",
    ),
    pytest.param(form(**GRANT), 401, "invalid_client", False, id="no-credentials"),
    pytest.param(
        lambda c: {"data": {**GRANT, "client_id": c.limited.name}},
        401,
        "invalid_client",
        False,
        id="client-id-without-secret",
    ),
    pytest.param(
        lambda c: {"data": {"client_id": c.limited.name, "client_secret": ODD_SECRET}},
        400,
        "invalid_request",
        False,
        id="missing-grant-type",
    ),
    pytest.param(
        limited_form(grant_type=""),
        400,
        "invalid_request",
        False,
        id="empty-grant-type",
    ),
    pytest.param(
        limited_form(grant_type="password"),
        400,
        "unsupported_grant_type",
        False,
        id="password-grant",
    ),
    pytest.param(
        limited_form(scope="accounts:write"),
        400,
        "invalid_scope",
        False,
        id="scope-not-granted",
    ),
    pytest.param(
        limited_form(scope="events:read accounts:write"),
        400,
        "invalid_scope",
        False,
        id="scope-partly-granted",
    ),
    pytest.param(
        limited_form(scope="admin:everything"),
        400,
        "invalid_scope",
        False,
        id="unknown-scope",
    ),
    pytest.param(
        lambda c: {
            "content": f"grant_type=client_credentials&client_id={c.limited.name}"
            f"&client_id={c.limited.name}&client_secret={quote_plus(ODD_SECRET)}",
            "headers": FORM,
        },
        400,
        "invalid_request",
        False,
        id="repeated-client-id",
    ),
    pytest.param(
        raw("grant_type=client_credentials&grant_type=client_credentials"),
        400,
        "invalid_request",
        False,
        id="repeated-grant-type",
    ),
    pytest.param(
        lambda c: {
            "json": {**GRANT, "client_id": c.limited.name, "client_secret": ODD_SECRET},
        },
        400,
        "invalid_request",
        False,
        id="json-body",
    ),
    pytest.param(
        raw("grant_type=client_credentials", "text/plain"),
        400,
        "invalid_request",
        False,
        id="text-plain-body",
    ),
    pytest.param(
        raw("grant_type&&"),
        400,
        "invalid_request",
        False,
        id="malformed-form",
    ),
    pytest.param(
        raw(b"grant_type=\xff"),
        400,
        "invalid_request",
        False,
        id="non-ascii-form",
    ),
    pytest.param(
        limited_form(scope="events:read " * 100),
        400,
        "invalid_request",
        False,
        id="too-long",
    ),
    pytest.param(
        lambda c: {
            "data": {**GRANT, "client_id": c.limited.name, "client_secret": ODD_SECRET},
            "headers": basic(c.limited.name, ODD_SECRET),
        },
        400,
        "invalid_request",
        False,
        id="basic-and-body-credentials",
    ),
    pytest.param(
        lambda _: {"data": GRANT, "headers": {"Authorization": "Basic !!!not-base64!!!"}},
        401,
        "invalid_client",
        True,
        id="malformed-basic",
    ),
    pytest.param(
        lambda _: {"data": GRANT, "headers": {"Authorization": "Basic " + b64url(b"\xff\xfe:x")}},
        401,
        "invalid_client",
        True,
        id="basic-not-utf8",
    ),
    pytest.param(
        lambda c: {
            "data": GRANT,
            "headers": {"Authorization": "Basic " + base64.b64encode(b"justname").decode()},
        },
        401,
        "invalid_client",
        True,
        id="basic-without-colon",
    ),
]


@pytest.mark.parametrize(("build", "status", "error", "basic_challenge"), BAD_TOKEN_REQUESTS)
async def test_bad_token_request_is_an_rfc6749_error(
    app: RunningApp,
    token_clients: TokenClients,
    build: Request,
    status: int,
    error: str,
    basic_challenge: bool,
) -> None:
    response = await app.anonymous.post(TOKEN, **build(token_clients))

    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["status"] == status
    assert "access_token" not in body
    if basic_challenge:
        assert response.headers["www-authenticate"] == 'Basic realm="riskgate"'
    else:
        assert "www-authenticate" not in response.headers


async def test_unknown_client_and_wrong_secret_are_indistinguishable(
    app: RunningApp, token_clients: TokenClients
) -> None:
    wrong = await issue(app.anonymous, token_clients.limited.name, "wrong")
    unknown = await issue(app.anonymous, "no-such-client", "wrong")
    disabled = await issue(
        app.anonymous, token_clients.disabled.name, token_clients.disabled_secret
    )

    def public(response: httpx.Response) -> dict[str, Any]:
        return {k: v for k, v in response.json().items() if k != "trace_id"}

    assert public(wrong) == public(unknown) == public(disabled)


# --- bearer tokens that must be refused ----------------------------------------------------------


async def test_control_a_hand_built_token_with_the_session_key_is_accepted(
    app: RunningApp, forger: Forger
) -> None:
    response = await app.anonymous.get(PROTECTED, headers=bearer(forger.signed()))
    assert response.status_code == 200, response.text


async def test_clock_skew_of_a_few_seconds_is_tolerated(app: RunningApp, forger: Forger) -> None:
    now = int(time.time())
    just_expired = forger.signed(claims=forger.claims(exp=now - 3, iat=now - 300, nbf=now - 300))
    almost_valid = forger.signed(claims=forger.claims(nbf=now + 3, iat=now + 3))
    for token in (just_expired, almost_valid):
        assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200


def _other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def signed_by_stranger(forger: Forger) -> str:
    """A well-formed token signed by an Ed25519 key this service has never seen, under its kid."""
    stranger = _other_key()
    return forger.signed(header=forger.header(kid=thumbprint(stranger.public_key())), key=stranger)


FORGED: list[Any] = [
    pytest.param(
        lambda f: f.signed(
            claims=f.claims(
                exp=int(time.time()) - 60, iat=int(time.time()) - 960, nbf=int(time.time()) - 960
            )
        ),
        id="expired",
    ),
    pytest.param(
        lambda f: f.signed(claims=f.claims(nbf=int(time.time()) + 60)), id="not-yet-valid"
    ),
    pytest.param(lambda f: f.signed(claims=f.claims(iss="https://evil.example")), id="wrong-iss"),
    pytest.param(lambda f: f.signed(claims=f.claims(aud="another-api")), id="wrong-aud"),
    pytest.param(lambda f: f.signed(claims=f.claims(aud=["another-api"])), id="aud-list-wrong"),
    pytest.param(lambda f: f.signed(header=f.header(typ="JWT")), id="typ-jwt"),
    pytest.param(lambda f: f.signed(header=f.header(typ=MISSING)), id="typ-missing"),
    pytest.param(lambda f: f.signed(header=f.header(kid=MISSING)), id="kid-missing"),
    pytest.param(
        lambda f: f.signed(header=f.header(kid=123)),
        id="kid-not-a-string",
    ),
    pytest.param(
        lambda f: f.signed(header=f.header(kid=[f.kid])),
        id="kid-a-list",
    ),
    pytest.param(
        lambda f: f.signed(header=f.header(typ=123)),
        id="typ-not-a-string",
    ),
    pytest.param(lambda f: signed_by_stranger(f), id="unknown-kid"),
    pytest.param(lambda f: f.signed(key=_other_key()), id="other-key-claiming-our-kid"),
    pytest.param(
        lambda f: f"{encode_part(f.header(alg='none'))}.{encode_part(f.claims())}.",
        id="alg-none",
    ),
    pytest.param(
        lambda f: f"{encode_part(f.header(alg='none', typ='JWT'))}.{encode_part(f.claims())}.",
        id="alg-none-typ-jwt",
    ),
    pytest.param(
        lambda f: hs256_with_public_key(f, "pem"), id="hs256-with-public-key-pem-as-secret"
    ),
    pytest.param(lambda f: hs256_with_public_key(f, "raw"), id="hs256-with-raw-public-key"),
    pytest.param(lambda f: hs256_with_public_key(f, "jwk-x"), id="hs256-with-jwk-x"),
    pytest.param(lambda f: f.signed(claims=f.claims(sub=str(uuid.uuid4()))), id="unknown-sub"),
    pytest.param(lambda f: f.signed(claims=f.claims(sub="not-a-uuid")), id="sub-not-a-uuid"),
    pytest.param(lambda f: f.signed(claims=f.claims(sub=12345)), id="sub-not-a-string"),
    pytest.param(lambda f: f.signed(claims=f.claims(exp="tomorrow")), id="exp-not-a-number"),
    pytest.param(lambda f: f.signed()[:-4] + "AAAA", id="signature-altered"),
    pytest.param(lambda f: f.signed().rsplit(".", 1)[0], id="two-segments"),
    pytest.param(lambda _: "garbage", id="garbage"),
    pytest.param(lambda _: "eyJhbGciOiJFZERTQSJ9.e30.AAAA", id="garbage-jwt-shaped"),
]


def hs256_with_public_key(forger: Forger, form: str) -> str:
    """The key-confusion attack: HMAC-SHA256 keyed with bytes of the public verification key."""
    public = forger.key.public_key()
    secrets = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    }
    secrets["jwk-x"] = b64url(secrets["raw"]).encode()
    signing_input = f"{encode_part(forger.header(alg='HS256'))}.{encode_part(forger.claims())}"
    mac = hmac.new(secrets[form], signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


@pytest.mark.parametrize("make_token", FORGED)
async def test_forged_or_invalid_token_is_401_invalid_token(
    app: RunningApp, forger: Forger, make_token: Callable[[Forger], str]
) -> None:
    assert_invalid_token(await app.anonymous.get(PROTECTED, headers=bearer(make_token(forger))))


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_token_missing_a_required_claim_is_401(
    app: RunningApp, forger: Forger, claim: str
) -> None:
    token = forger.signed(claims=forger.claims(**{claim: MISSING}))
    assert_invalid_token(await app.anonymous.get(PROTECTED, headers=bearer(token)))


async def test_tampered_payload_with_the_original_signature_is_401(app: RunningApp) -> None:
    token = await access_token(
        app.anonymous, app.credentials.client_id, app.credentials.client_secret, scope="score:write"
    )
    # Untampered, it authenticates and lacks the scope: 403, not 401.
    assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 403

    header, payload, signature = token.split(".")
    claims = json.loads(unb64url(payload))
    claims["scope"] = "score:write events:read"
    tampered = f"{header}.{encode_part(claims)}.{signature}"
    assert_invalid_token(await app.anonymous.get(PROTECTED, headers=bearer(tampered)))


async def test_token_of_a_client_disabled_after_issue_is_401(app: RunningApp) -> None:
    record, issued = await register_client(app.runtime)
    token = await access_token(app.anonymous, issued.client_id, issued.client_secret)
    assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200

    await ClientAdmin(app.runtime.pool).set_active(record.name, False)
    assert_invalid_token(await app.anonymous.get(PROTECTED, headers=bearer(token)))

    await ClientAdmin(app.runtime.pool).set_active(record.name, True)
    assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200


async def test_token_loses_scopes_its_client_no_longer_holds(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    record, issued = await register_client(app.runtime)
    token = await access_token(app.anonymous, issued.client_id, issued.client_secret)
    assert (await app.anonymous.get(PROTECTED, headers=bearer(token))).status_code == 200
    await db.execute("UPDATE clients SET scopes = ARRAY['score:write'] WHERE id = $1", record.id)
    denied = await app.anonymous.get(PROTECTED, headers=bearer(token))
    assert denied.status_code == 403
    assert denied.json()["type"] == PROBLEMS + "insufficient-scope"


async def test_basic_authorization_on_an_api_route_is_refused_with_a_bearer_challenge(
    app: RunningApp,
) -> None:
    creds = basic(app.credentials.client_id, app.credentials.client_secret)
    response = await app.anonymous.get(PROTECTED, headers=creds)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert "basic" not in response.headers["www-authenticate"].lower()
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer    ", "Token abc", "bearer"])
async def test_malformed_authorization_header_is_401(app: RunningApp, authorization: str) -> None:
    response = await app.anonymous.get(PROTECTED, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_bad_bearer_token_is_not_rescued_by_a_good_api_key(app: RunningApp) -> None:
    response = await app.anonymous.get(
        PROTECTED, headers={"Authorization": "Bearer garbage", "X-API-Key": app.credentials.api_key}
    )
    assert_invalid_token(response)


# --- API keys ------------------------------------------------------------------------------------


async def test_api_key_right_wrong_and_disabled(app: RunningApp) -> None:
    record, issued = await register_client(app.runtime)
    good = {"X-API-Key": issued.api_key}
    assert (await app.anonymous.get(PROTECTED, headers=good)).status_code == 200

    for wrong in (issued.api_key[:-1], issued.api_key + "x", "rgk_" + "A" * 43, ""):
        assert_invalid_token(await app.anonymous.get(PROTECTED, headers={"X-API-Key": wrong}))
    # A client secret is not an API key.
    assert_invalid_token(
        await app.anonymous.get(PROTECTED, headers={"X-API-Key": issued.client_secret})
    )

    await ClientAdmin(app.runtime.pool).set_active(record.name, False)
    assert_invalid_token(await app.anonymous.get(PROTECTED, headers=good))
    await ClientAdmin(app.runtime.pool).set_active(record.name, True)
    assert (await app.anonymous.get(PROTECTED, headers=good)).status_code == 200


async def test_api_key_is_not_a_bearer_token(app: RunningApp) -> None:
    assert_invalid_token(
        await app.anonymous.get(PROTECTED, headers=bearer(app.credentials.api_key))
    )


# --- signing key rotation ------------------------------------------------------------------------


@pytest.fixture
async def rotated_app(
    settings: Settings, signing_key_file: Path, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    new_key = tmp_path / "new-signing.pem"
    new_key.write_bytes(generate_private_key_pem())
    rotated = settings_with(
        settings, jwt_signing_key_file=str(new_key), jwt_previous_key_file=str(signing_key_file)
    )
    async with running_app(rotated) as running:
        yield running


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    app: RunningApp, rotated_app: RunningApp, settings: Settings, forger: Forger
) -> None:
    old_kid = forger.kid
    old_token = await access_token(
        app.anonymous, app.credentials.client_id, app.credentials.client_secret
    )
    assert jwt_header(old_token)["kid"] == old_kid

    new_kid = thumbprint(
        load_private_key(rotated_app.runtime.settings.jwt_signing_key_file).public_key()
    )
    kids = [key["kid"] for key in (await rotated_app.anonymous.get(JWKS)).json()["keys"]]
    assert kids == [new_kid, old_kid], "current key first, then the previous one"

    response = await rotated_app.anonymous.get(PROTECTED, headers=bearer(old_token))
    assert response.status_code == 200, response.text

    new_token = await access_token(
        rotated_app.anonymous,
        rotated_app.credentials.client_id,
        rotated_app.credentials.client_secret,
    )
    assert jwt_header(new_token)["kid"] == new_kid
    response = await rotated_app.anonymous.get(PROTECTED, headers=bearer(new_token))
    assert response.status_code == 200, response.text

    foreign = signed_by_stranger(forger)
    assert_invalid_token(await rotated_app.anonymous.get(PROTECTED, headers=bearer(foreign)))

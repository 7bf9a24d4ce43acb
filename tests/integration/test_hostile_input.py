"""Bodies, ids and amounts built to slip past validation: each is refused with the right
problem (never a 500), names what is wrong, and changes nothing; responses that carry a secret
are never cached.

Every endpoint that takes a JSON body is tried, since they share one decoder and a bypass in
any of them is a bypass. The webhook endpoints refuse these bodies before they need a key ring,
so the shared app serves them all.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from conftest import RunningApp, new_event_id, new_key
from riskgate.idempotency.schemas import money_as_spelled_fingerprint
from riskgate.transactions.schemas import DebitRequest

PROBLEMS = "https://riskgate.io/problems/"
HOOK = "https://hooks.riskgate-test.invalid/riskgate"
SECRET = "whsec_" + "A" * 43 + "="


async def send(
    client: httpx.AsyncClient, method: str, path: str, body: str, key: str | None = None
) -> httpx.Response:
    """``body`` exactly as written (json.dumps would fold duplicate keys and escapes)."""
    headers = {"content-type": "application/json", "idempotency-key": key or new_key()}
    return await client.request(method, path, content=body.encode(), headers=headers)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == PROBLEMS + slug, problem
    return problem


async def open_account(client: httpx.AsyncClient, balance: str = "100.00") -> int:
    body = f'{{"customer_ref": "c-{uuid.uuid4().hex[:8]}", "currency": "GBP", '
    body += f'"opening_balance": "{balance}"}}'
    response = await send(client, "POST", "/v1/accounts", body)
    assert response.status_code == 201, response.text
    account_id: int = response.json()["id"]
    return account_id


async def balance_and_count(db: asyncpg.Connection[Any], account_id: int) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT balance_minor, (SELECT count(*) FROM transactions WHERE account_id = $1) AS n "
        "FROM accounts WHERE id = $1",
        account_id,
    )
    assert row is not None
    return row["balance_minor"], row["n"]


SIGNALS = '"signals": {"delay": 0.1, "weather": 0.2, "geo": 0.3, "payment_anomaly": 0}'


def score_body(event_id: str = "", extra: str = "", signals: str = SIGNALS) -> str:
    return f'{{"event_id": "{event_id or new_event_id()}", "source": "flight", {signals}{extra}}}'


# --- item: a body that cannot be decoded is 400 malformed-body, never a 500 -------------------

SURROGATE_BODIES = [
    pytest.param("POST", "/v1/score", score_body(event_id="\\ud800"), id="score-value"),
    pytest.param("POST", "/v1/score", score_body(extra=', "\\udfff": 1'), id="score-key"),
    pytest.param(
        "POST",
        "/v1/score",
        score_body(signals='"signals": {"\\ud83d": 0.5}'),
        id="score-nested-key",
    ),
    pytest.param(
        "POST",
        "/v1/transactions",
        '{"account_id": 1, "amount": "\\ud800", "currency": "GBP"}',
        id="transaction-amount",
    ),
    pytest.param(
        "POST",
        "/v1/accounts",
        '{"customer_ref": "c\\udc00", "currency": "GBP", "opening_balance": "1.00"}',
        id="account-customer-ref",
    ),
    pytest.param(
        "POST",
        "/v1/webhooks/subscriptions",
        '{"url": "https://x.example/\\ud800", "event_types": ["webhook.test"]}',
        id="subscription-url",
    ),
    pytest.param(
        "POST", "/v1/webhooks/test", '{"url": "https://x.example/\\ud800"}', id="test-url"
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), SURROGATE_BODIES)
async def test_a_lone_surrogate_escape_is_400_malformed_body(
    client: httpx.AsyncClient, method: str, path: str, body: str
) -> None:
    assert_problem(await send(client, method, path, body), 400, "malformed-body")


@pytest.mark.parametrize("depth", [33, 450, 2000])
@pytest.mark.parametrize("opening", ['{"a": ', "["])
async def test_a_deeply_nested_body_is_400_malformed_body(
    client: httpx.AsyncClient, opening: str, depth: int
) -> None:
    closing = "}" if opening.startswith("{") else "]"
    body = opening * depth + "1" + closing * depth
    assert_problem(await send(client, "POST", "/v1/score", body), 400, "malformed-body")


async def test_a_surrogate_pair_is_text_and_reaches_validation(client: httpx.AsyncClient) -> None:
    """A paired escape is one character (here an emoji): valid JSON, refused by the id pattern."""
    response = await send(client, "POST", "/v1/score", score_body(event_id="\\ud83d\\ude00"))
    assert assert_problem(response, 422, "validation-error")["field"] == "event_id"


# --- item: duplicate keys are refused at every depth, naming the key ----------------------------

SUB = f"/v1/webhooks/subscriptions/{uuid.uuid4()}"
MANAGED = "/v1/webhooks/managed-subscriptions/payments/hooks"
DUPLICATE_BODIES = [
    pytest.param("POST", "/v1/score", score_body(extra=', "source": "hotel"'), "source",
                 id="score-top"),
    pytest.param(
        "POST", "/v1/score",
        score_body(signals='"signals": {"delay": 0.1, "weather": 0.2, "geo": 0.3, '
                           '"payment_anomaly": 0, "delay": 0.9}'),
        "signals.delay", id="score-nested",
    ),
    pytest.param("POST", "/v1/transactions",
                 '{"account_id": 1, "amount": "1", "amount": "50", "currency": "GBP"}',
                 "amount", id="transaction"),
    pytest.param("POST", "/v1/accounts",
                 '{"customer_ref": "c1", "currency": "GBP", "currency": "JPY", '
                 '"opening_balance": "1"}', "currency", id="account"),
    pytest.param("POST", "/v1/webhooks/subscriptions",
                 f'{{"url": "{HOOK}", "url": "http://10.0.0.1/", '
                 '"event_types": ["webhook.test"]}', "url", id="subscription-create"),
    pytest.param("PATCH", SUB, '{"paused": true, "paused": false}', "paused",
                 id="subscription-update"),
    pytest.param("POST", f"{SUB}/recover",
                 '{"since": "2026-01-01T00:00:00Z", "since": "2020-01-01T00:00:00Z"}',
                 "since", id="subscription-recover"),
    pytest.param("PUT", MANAGED,
                 f'{{"url": "{HOOK}", "event_types": ["webhook.test"], "clients": ["a1"], '
                 f'"secrets": [{{"value": "{SECRET}", "value": "{SECRET}"}}]}}',
                 "secrets[0].value", id="managed-sync-in-a-list"),
    pytest.param("POST", "/v1/webhooks/test", f'{{"url": "{HOOK}", "url": "{HOOK}"}}', "url",
                 id="test-webhook"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "field"), DUPLICATE_BODIES)
async def test_a_duplicate_key_is_400_naming_it(
    client: httpx.AsyncClient, method: str, path: str, body: str, field: str
) -> None:
    problem = assert_problem(await send(client, method, path, body), 400, "duplicate-key")
    assert problem["field"] == field
    assert repr(field.rsplit(".", 1)[-1]) in problem["detail"]


async def test_a_duplicate_amount_debits_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    account_id = await open_account(client)
    body = f'{{"account_id": {account_id}, "amount": "1.00", "amount": "50.00", "currency": "GBP"}}'
    assert_problem(await send(client, "POST", "/v1/transactions", body), 400, "duplicate-key")
    assert await balance_and_count(db, account_id) == (10000, 0)


# --- items: amount strings are plain ASCII decimals; NaN and Infinity name the field -----------

BAD_AMOUNT_TEXT = [
    pytest.param('"1e3"', id="exponent"),
    pytest.param('"1E1"', id="exponent-upper"),
    pytest.param('" 10.00 "', id="padded"),
    pytest.param('"10.00 "', id="trailing-space"),
    pytest.param('"10.00\\n"', id="trailing-newline"),
    pytest.param('"1_000"', id="underscore"),
    pytest.param('"+10"', id="plus-sign"),
    pytest.param('"\\u0661\\u0660"', id="arabic-indic-digits"),
    pytest.param('"\\uff11\\uff10"', id="fullwidth-digits"),
    pytest.param('"10."', id="bare-point"),
    pytest.param('".5"', id="no-integer-part"),
    pytest.param('"010.00"', id="leading-zero"),
    pytest.param('"1,000.00"', id="thousands-separator"),
    pytest.param('"0x10"', id="hex"),
    pytest.param('""', id="empty"),
    pytest.param('"sNaN"', id="signalling-nan-string"),
    pytest.param("NaN", id="nan-literal"),
    pytest.param("Infinity", id="infinity-literal"),
    pytest.param("-Infinity", id="minus-infinity-literal"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNT_TEXT)
async def test_an_amount_that_is_not_a_plain_decimal_is_422_naming_it(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], amount: str
) -> None:
    account_id = await open_account(client)
    key = new_key()
    body = f'{{"account_id": {account_id}, "amount": {amount}, "currency": "GBP"}}'
    problem = assert_problem(
        await send(client, "POST", "/v1/transactions", body, key), 422, "validation-error"
    )
    assert problem["field"] == "amount"
    assert await balance_and_count(db, account_id) == (10000, 0)
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 0


@pytest.mark.parametrize("balance", ['"1e3"', '" 5"', "NaN", "Infinity"])
async def test_an_opening_balance_that_is_not_a_plain_decimal_is_422_naming_it(
    client: httpx.AsyncClient, balance: str
) -> None:
    body = f'{{"customer_ref": "c-1", "currency": "GBP", "opening_balance": {balance}}}'
    problem = assert_problem(await send(client, "POST", "/v1/accounts", body), 422,
                             "validation-error")  # fmt: skip
    assert problem["field"] == "opening_balance"


@pytest.mark.parametrize(
    ("amount", "debited"),
    [('"10"', 1000), ('"0.01"', 1), ('"10.5"', 1050), ('"0.50"', 50), ("1e1", 1000)],
)
async def test_plain_decimal_strings_and_json_numbers_are_accepted(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], amount: str, debited: int
) -> None:
    account_id = await open_account(client)
    body = f'{{"account_id": {account_id}, "amount": {amount}, "currency": "GBP"}}'
    response = await send(client, "POST", "/v1/transactions", body)
    assert response.status_code == 201, response.text
    assert await balance_and_count(db, account_id) == (10000 - debited, 1)


# --- item: the idempotency fingerprint does not depend on how an amount is spelled -------------


async def test_the_same_amount_spelled_another_way_is_a_replay(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    account_id = await open_account(client)
    key = new_key()
    spellings = ['"5.00"', "5.0", "5", '"5"', "5.000", "0.5e1"]
    responses = [
        await send(
            client,
            "POST",
            "/v1/transactions",
            f'{{"currency": "GBP", "amount": {amount}, "account_id": {account_id}}}',
            key,
        )
        for amount in spellings
    ]
    assert [r.status_code for r in responses] == [201] * len(spellings), responses[-1].text
    assert [r.headers.get("idempotent-replayed") for r in responses[1:]] == ["true"] * 5
    assert {r.content for r in responses} == {responses[0].content}
    assert await balance_and_count(db, account_id) == (9500, 1)


async def test_another_amount_with_the_same_key_is_still_409(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client)
    key = new_key()
    body = f'{{"account_id": {account_id}, "amount": "5.00", "currency": "GBP"}}'
    assert (await send(client, "POST", "/v1/transactions", body, key)).status_code == 201
    other = await send(client, "POST", "/v1/transactions", body.replace("5.00", "5.01"), key)
    assert_problem(other, 409, "idempotency-key-reused")


async def test_a_record_stored_before_money_was_canonical_still_replays(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    """A retry that straddles the upgrade: the record carries the earlier fingerprint."""
    account_id = await open_account(client)
    key = new_key()
    body = f'{{"account_id": {account_id}, "amount": "5.00", "currency": "GBP"}}'
    first = await send(client, "POST", "/v1/transactions", body, key)
    assert first.status_code == 201, first.text
    request = msgspec.json.decode(body, type=DebitRequest)
    earlier = money_as_spelled_fingerprint("POST", "/v1/transactions", request)
    await db.execute("UPDATE idempotency_keys SET fingerprint = $1 WHERE key = $2", earlier, key)
    again = await send(client, "POST", "/v1/transactions", body, key)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert await balance_and_count(db, account_id) == (9500, 1)


async def test_an_opening_balance_spelled_another_way_is_a_replay(
    client: httpx.AsyncClient,
) -> None:
    key, ref = new_key(), f"c-{uuid.uuid4().hex[:8]}"
    body = f'{{"customer_ref": "{ref}", "currency": "GBP", "opening_balance": BALANCE}}'
    first = await send(client, "POST", "/v1/accounts", body.replace("BALANCE", '"100.00"'), key)
    again = await send(client, "POST", "/v1/accounts", body.replace("BALANCE", "100"), key)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["idempotent-replayed"] == "true"


# --- item: identifiers in paths and queries are anchored too -----------------------------------


async def test_a_nul_in_the_event_id_filter_is_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", params={"event_id": "ev\x00"})
    assert assert_problem(response, 422, "validation-error")["field"] == "event_id"


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        pytest.param("client_id=demo%00&client_secret=x", {}, id="form-client-id"),
        pytest.param("client_id=demo&client_secret=x%00", {}, id="form-secret"),
        pytest.param("", {"authorization": "Basic ZGVtbyUwMDp4"}, id="basic-demo%00:x"),
    ],
)
async def test_a_nul_in_token_credentials_is_a_client_error_not_a_500(
    app: RunningApp, form: str, headers: dict[str, str]
) -> None:
    body = "&".join(part for part in ("grant_type=client_credentials", form) if part)
    response = await app.anonymous.post(
        "/oauth2/token",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_request", "invalid_client")


async def test_a_trailing_newline_in_event_id_is_422(client: httpx.AsyncClient) -> None:
    response = await send(client, "POST", "/v1/score", score_body(event_id="ev-1\\n"))
    assert assert_problem(response, 422, "validation-error")["field"] == "event_id"


async def test_a_trailing_newline_in_the_source_filter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", params={"source": "flight\n"})
    assert assert_problem(response, 422, "validation-error")["field"] == "source"


async def test_two_idempotency_key_headers_are_400(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    """Which one counts would depend on who reads them: neither does."""
    first, second = new_key(), new_key()
    headers = [
        (b"content-type", b"application/json"),
        (b"idempotency-key", first.encode()),
        (b"idempotency-key", second.encode()),
    ]
    response = await client.post("/v1/score", content=score_body().encode(), headers=headers)
    problem = assert_problem(response, 400, "idempotency-key-invalid")
    assert problem["field"] == "Idempotency-Key"
    written = await db.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE key = ANY($1)", [first, second]
    )
    assert written == 0


# --- item: responses that carry a secret are never cached --------------------------------------
# (the webhook secrets are tested in test_webhooks_subscriptions.py, whose app has a key ring)


async def test_the_token_endpoint_is_no_store(app: RunningApp) -> None:
    """Client credentials are exchanged here: the token response must not be cached either."""
    response = await app.anonymous.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": app.caller.name,
              "client_secret": app.credentials.client_secret},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"

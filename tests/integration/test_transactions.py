"""POST /v1/transactions under the contract of DESIGN section 4: outcomes, precedence, exact
money, and balances that survive any concurrency."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import RunningApp, new_key, register_client

PROBLEMS = "https://riskgate.io/problems/"


async def open_account(
    client: httpx.AsyncClient, balance: str | int = "1000.00", currency: str = "GBP"
) -> int:
    response = await client.post(
        "/v1/accounts",
        json={"customer_ref": f"c-{uuid.uuid4().hex[:8]}", "currency": currency,
              "opening_balance": balance},
        headers={"Idempotency-Key": new_key()},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    account_id: int = response.json()["id"]
    return account_id


async def debit(
    client: httpx.AsyncClient,
    account_id: int,
    amount: Any,
    currency: str = "GBP",
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        "/v1/transactions",
        json={"account_id": account_id, "amount": amount, "currency": currency},
        headers={"Idempotency-Key": key or new_key()},
    )  # fmt: skip


async def balance_of(client: httpx.AsyncClient, account_id: int) -> str:
    balance: str = (await client.get(f"/v1/accounts/{account_id}")).json()["balance"]
    return balance


async def ledger(db: asyncpg.Connection[Any], account_id: int) -> tuple[int, int, int]:
    """(opening, current balance, sum of approved debits) in minor units."""
    row = await db.fetchrow(
        """SELECT a.opening_balance_minor, a.balance_minor,
                  coalesce((SELECT sum(amount_minor) FROM transactions
                            WHERE account_id = a.id AND status = 'approved'), 0) AS approved
           FROM accounts a WHERE a.id = $1""",
        account_id,
    )
    assert row is not None
    return row["opening_balance_minor"], row["balance_minor"], int(row["approved"])


@pytest.mark.parametrize("round_", range(3))
async def test_200_concurrent_debits_of_10_against_1000_approve_exactly_100(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], round_: int
) -> None:
    account_id = await open_account(client, "1000.00")
    responses = await asyncio.gather(*(debit(client, account_id, "10.00") for _ in range(200)))

    assert {r.status_code for r in responses} == {201}, [
        r.text for r in responses if r.status_code != 201
    ]
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("approved") == 100
    assert statuses.count("declined") == 100
    assert {r.json()["reason"] for r in responses if r.json()["status"] == "declined"} == {
        "insufficient_funds"
    }
    assert await balance_of(client, account_id) == "0.00"
    opening, balance, approved = await ledger(db, account_id)
    assert (opening, balance, approved) == (100_000, 0, 100_000)
    assert (
        await db.fetchval("SELECT count(*) FROM transactions WHERE account_id = $1", account_id)
        == 200
    )


async def test_concurrent_replays_of_one_key_debit_once(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    account_id = await open_account(client, "100.00")
    key = new_key()
    responses = await asyncio.gather(
        *(debit(client, account_id, "10.00", key=key) for _ in range(30))
    )

    created = [r for r in responses if r.status_code == 201]
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.content for r in created}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in created) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"] == PROBLEMS + "idempotency-key-in-flight"
    assert await balance_of(client, account_id) == "90.00"
    assert (
        await db.fetchval("SELECT count(*) FROM transactions WHERE account_id = $1", account_id)
        == 1
    )


async def test_the_same_key_with_another_amount_is_409(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client)
    key = new_key()
    assert (await debit(client, account_id, "1.00", key=key)).status_code == 201
    reused = await debit(client, account_id, "2.00", key=key)
    assert reused.status_code == 409
    assert reused.json()["type"] == PROBLEMS + "idempotency-key-reused"
    assert await balance_of(client, account_id) == "999.00"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        pytest.param("NaN", "GBP", id="nan-string"),
        pytest.param("Infinity", "GBP", id="infinity-string"),
        pytest.param("-Infinity", "GBP", id="minus-infinity-string"),
        pytest.param(0, "GBP", id="zero"),
        pytest.param("0.00", "GBP", id="zero-string"),
        pytest.param("-0", "GBP", id="minus-zero"),
        pytest.param(-5, "GBP", id="negative"),
        pytest.param("-5.00", "GBP", id="negative-string"),
        pytest.param("10.001", "GBP", id="three-decimals-gbp"),
        pytest.param(10.001, "GBP", id="three-decimals-number"),
        pytest.param("10.5", "JPY", id="decimals-in-jpy"),
        pytest.param("1000000000.01", "GBP", id="beyond-maximum"),
        pytest.param(1e20, "GBP", id="huge-number"),
        pytest.param(True, "GBP", id="boolean"),
        pytest.param("ten", "GBP", id="words"),
        pytest.param(None, "GBP", id="null"),
        pytest.param([10], "GBP", id="list"),
    ],
)
async def test_bad_amounts_are_422_naming_amount_and_change_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], amount: Any, currency: str
) -> None:
    account_id = await open_account(client, 1000, currency=currency)
    opening = await balance_of(client, account_id)
    key = new_key()
    response = await debit(client, account_id, amount, currency=currency, key=key)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "amount"
    assert await balance_of(client, account_id) == opening
    count = await db.fetchval("SELECT count(*) FROM transactions WHERE account_id = $1", account_id)
    assert count == 0
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 0


async def test_amount_may_be_a_number_or_a_decimal_string(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client, "100.00")
    assert (await debit(client, account_id, 10.1)).json()["amount"] == "10.10"
    assert (await debit(client, account_id, "0.29")).json()["amount"] == "0.29"
    assert (await debit(client, account_id, 5)).json()["amount"] == "5.00"
    assert await balance_of(client, account_id) == "84.61"


async def test_precedence_not_active_then_insufficient_then_fraud(
    client: httpx.AsyncClient, app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    rich = await open_account(client, "50000.00")
    poor = await open_account(client, "5000.00")
    frozen = await open_account(client, "50000.00")
    await db.execute("UPDATE accounts SET status = 'frozen' WHERE id = $1", frozen)

    # not active beats everything, even an amount that is also over the threshold
    frozen_big = (await debit(client, frozen, "20000.00")).json()
    assert (frozen_big["status"], frozen_big["reason"]) == ("declined", "account_not_active")
    # insufficient funds beats the fraud threshold
    poor_big = (await debit(client, poor, "20000.00")).json()
    assert (poor_big["status"], poor_big["reason"]) == ("declined", "insufficient_funds")
    # only then the fraud threshold: strictly above 10,000.00
    flagged = (await debit(client, rich, "10000.01")).json()
    assert (flagged["status"], flagged["reason"]) == ("flagged_for_fraud", "fraud_threshold")
    at_threshold = (await debit(client, rich, "10000.00")).json()
    assert at_threshold["status"] == "approved"
    assert await balance_of(client, rich) == "40000.00"


async def test_a_flagged_transaction_counts_a_fraud_alert_and_deducts_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    async def fraud_alerts() -> float:
        text = (await client.get("/metrics")).text
        line = next(line for line in text.splitlines() if line.startswith("fraud_alerts_total "))
        return float(line.split()[1])

    account_id = await open_account(client, "50000.00")
    before = await fraud_alerts()
    response = await debit(client, account_id, "12000.00")
    assert response.json()["status"] == "flagged_for_fraud"
    assert await fraud_alerts() == before + 1
    assert await balance_of(client, account_id) == "50000.00"
    transaction_id = uuid.UUID(response.json()["id"])
    outbox = await db.fetchrow(
        "SELECT event_type, payload FROM outbox WHERE aggregate_id = $1", transaction_id
    )
    assert outbox is not None
    assert outbox["event_type"] == "transaction.flagged"
    assert json.loads(outbox["payload"])["status"] == "flagged_for_fraud"


async def test_every_outcome_writes_its_outbox_event_and_audit_row(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    account_id = await open_account(client, "100.00")
    approved = (await debit(client, account_id, "60.00")).json()
    declined = (await debit(client, account_id, "60.00")).json()
    for transaction, event_type in [
        (approved, "transaction.approved"),
        (declined, "transaction.declined"),
    ]:
        row = await db.fetchrow(
            "SELECT event_type FROM outbox WHERE aggregate_id = $1", uuid.UUID(transaction["id"])
        )
        assert row is not None
        assert row["event_type"] == event_type
        audit = await db.fetch(
            "SELECT action, details FROM audit_log"
            " WHERE entity_type = 'transaction' AND entity_id = $1",
            transaction["id"],
        )
        assert [a["action"] for a in audit] == [event_type]
    details = json.loads(
        await db.fetchval("SELECT details FROM audit_log WHERE entity_id = $1", approved["id"])
    )
    assert (details["amount_minor"], details["balance_after_minor"]) == (6000, 4000)


async def test_unknown_account_is_404_and_currency_mismatch_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    missing = await debit(client, 2**62, "1.00")
    assert missing.status_code == 404
    assert missing.json()["type"] == PROBLEMS + "account-not-found"
    account_id = await open_account(client, "10.00")
    mismatch = await debit(client, account_id, "1.00", currency="EUR")
    assert mismatch.status_code == 422
    assert mismatch.json()["field"] == "currency"
    assert (
        await db.fetchval("SELECT count(*) FROM transactions WHERE account_id = $1", account_id)
        == 0
    )


async def test_another_clients_account_is_invisible(
    app: RunningApp, client: httpx.AsyncClient
) -> None:
    account_id = await open_account(client, "10.00")
    _, other = await register_client(app.runtime)
    async with app.http_client({"X-API-Key": other.api_key}) as intruder:
        assert (await debit(intruder, account_id, "1.00")).status_code == 404
        assert (await intruder.get(f"/v1/accounts/{account_id}/statement")).status_code == 404
    assert await balance_of(client, account_id) == "10.00"


async def test_get_transaction_returns_the_stored_transaction(client: httpx.AsyncClient) -> None:
    account_id = await open_account(client, "10.00")
    created = await debit(client, account_id, "2.50")
    fetched = await client.get(created.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == created.json()


async def test_statement_pages_cover_every_transaction_once_newest_first(
    client: httpx.AsyncClient,
) -> None:
    account_id = await open_account(client, "100.00")
    made = [(await debit(client, account_id, f"{i + 1}.00")).json()["id"] for i in range(12)]

    first = (await client.get(f"/v1/accounts/{account_id}/statement")).json()
    assert len(first["transactions"]) == 5, "default page size is 5"
    assert first["balance"] == "22.00"
    assert (first["customer_ref"], first["currency"]) == (first["customer_ref"], "GBP")

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/v1/accounts/{account_id}/statement", params=params)).json()
        seen += [t["id"] for t in page["transactions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    over = await client.get(f"/v1/accounts/{account_id}/statement", params={"limit": 101})
    assert over.status_code == 422


async def test_the_statement_query_uses_the_index(db: asyncpg.Connection[Any]) -> None:
    await db.execute("SET enable_seqscan = off")  # plan choice, not table size, is under test
    plan = "\n".join(
        row[0]
        for row in await db.fetch(
            """EXPLAIN SELECT id FROM transactions WHERE account_id = 1
               AND id < '01a20653-e323-736e-a871-c96158fc911a' ORDER BY id DESC LIMIT 6"""
        )
    )
    assert "transactions_account_recent" in plan, plan


async def test_open_account_validates_and_is_idempotent(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    body = {"customer_ref": "cust-42", "currency": "EUR", "opening_balance": "250.00"}
    key = new_key()
    first = await client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    again = await client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["balance"] == "250.00"

    for bad, field in [
        ({**body, "opening_balance": "-1"}, "opening_balance"),
        ({**body, "opening_balance": "1.001"}, "opening_balance"),
        ({**body, "currency": "XXX"}, "currency"),
        ({**body, "customer_ref": "Jane Doe"}, "customer_ref"),
        ({**body, "name": "Jane"}, "name"),
    ]:
        response = await client.post(
            "/v1/accounts", json=bad, headers={"Idempotency-Key": new_key()}
        )
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["field"] == field
    assert Decimal(first.json()["opening_balance"]) == Decimal("250.00")


async def test_a_request_that_fails_frees_its_key_at_once(client: httpx.AsyncClient) -> None:
    """The lease is released when the work fails, so a corrected retry need not wait it out."""
    key = new_key()
    assert (await debit(client, 2**62, "1.00", key=key)).status_code == 404
    account_id = await open_account(client, "5.00")
    retried = await debit(client, account_id, "1.00", key=key)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers

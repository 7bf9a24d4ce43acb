"""Webhook delivery end to end: the real app writes outbox rows, a real worker delivers them to
a real HTTP receiver on 127.0.0.1, signed, retried, recorded, replayable."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from conftest import (
    RunningApp,
    connect_as_app,
    fresh_database,
    new_key,
    register_client,
    running_app,
)
from riskgate.settings import Settings
from riskgate.webhooks import repository
from riskgate.webhooks.schemas import AttemptRecord
from riskgate.webhooks.worker import Worker
from webhook_receiver import Received, Receiver, script
from webhook_support import (
    deliveries,
    running_worker,
    score,
    subscribe,
    unique_db,
    wait_delivery,
    wait_dispatched,
    webhook_settings,
)


@pytest.fixture(scope="module")
async def hook_settings(postgres_admin_url: str, settings: Settings) -> Settings:
    url = await fresh_database(postgres_admin_url, unique_db("hooks"))
    return webhook_settings(settings, url)


@pytest.fixture(scope="module")
async def app(hook_settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(hook_settings) as running:
        yield running


@pytest.fixture(scope="module")
async def worker(hook_settings: Settings, app: RunningApp) -> AsyncIterator[Worker]:
    async with running_worker(hook_settings) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.close()


@pytest.fixture
async def client(app: RunningApp, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own per test: its events and subscriptions are isolated from the rest."""
    _, issued = await register_client(app.runtime)
    async with app.http_client({"X-API-Key": issued.api_key}) as http:
        yield http


def verify_riskgate_signature(secret: str, request: Received, tolerance: int = 300) -> None:
    """What a receiver does by hand with the ``Riskgate-Signature`` header."""
    fields = [part.split("=", 1) for part in request.headers["riskgate-signature"].split(",")]
    timestamp = int(next(v for k, v in fields if k == "t"))
    assert abs(time.time() - timestamp) < tolerance
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert any(hmac.compare_digest(expected, v) for k, v in fields if k == "v1"), "no match"


async def test_a_decision_is_delivered_signed_both_ways_with_envelope_and_traceparent(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    subscription = await subscribe(client, receiver.url)
    trace_id = uuid.uuid4().hex
    decision = await score(client)
    [request] = await receiver.wait_for(1)

    Webhook(subscription["secret"]).verify(request.body, request.headers)
    verify_riskgate_signature(subscription["secret"], request)
    envelope = json.loads(request.body)
    assert set(envelope) == {"type", "timestamp", "data"}
    assert envelope["type"] == "decision.created"
    assert envelope["data"]["id"] == decision["id"]
    assert envelope["data"]["action"] == "review"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["traceparent"].split("-")[1] == decision["trace_id"]
    assert trace_id  # an incoming trace is covered by the scoring tests; here: it is forwarded

    delivery = await wait_delivery(client, "succeeded", event_ref=decision["id"])
    assert delivery["id"] == request.headers["webhook-id"]
    assert delivery["subscription_id"] == subscription["id"]
    assert delivery["attempts"][0]["status_code"] == 200
    assert delivery["attempts"][0]["response_body"] == "ok"


async def test_both_secrets_sign_while_a_rotation_overlaps(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    subscription = await subscribe(client, receiver.url)
    rotated = await client.post(
        f"/v1/webhooks/subscriptions/{subscription['id']}/rotate-secret",
        headers={"Idempotency-Key": new_key()},
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    await score(client)
    [request] = await receiver.wait_for(1)

    for secret in (subscription["secret"], new_secret):
        Webhook(secret).verify(request.body, request.headers)
        verify_riskgate_signature(secret, request)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.headers["riskgate-signature"].count("v1=") == 2


async def test_after_the_overlap_only_the_new_secret_signs(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    subscription = await subscribe(client, receiver.url)
    rotated = await client.post(
        f"/v1/webhooks/subscriptions/{subscription['id']}/rotate-secret",
        params={"overlap_seconds": 0},
        headers={"Idempotency-Key": new_key()},
    )
    await score(client)
    [request] = await receiver.wait_for(1)
    Webhook(rotated.json()["secret"]).verify(request.body, request.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(subscription["secret"]).verify(request.body, request.headers)


async def test_500_is_retried_with_the_same_webhook_id_then_succeeds(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.behaviour = script((500, {}, b"boom"))
    await subscribe(client, receiver.url)
    decision = await score(client)
    first, second = await receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body, "the same bytes, re-signed"
    delivery = await wait_delivery(client, "succeeded", event_ref=decision["id"])
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in delivery["attempts"]] == [
        (2, 200, "succeeded"),
        (1, 500, "retrying"),
    ]
    assert delivery["attempts"][1]["error_class"] == "http_5xx"
    assert delivery["attempts"][1]["response_body"] == "boom"


async def test_retry_after_on_429_is_honoured(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.behaviour = script((429, {"Retry-After": "1"}, b""))
    await subscribe(client, receiver.url)
    await score(client)
    first, second = await receiver.wait_for(2, timeout=10)
    assert second.started - first.started >= 0.95, "the schedule says 100 ms; Retry-After 1 s"


async def test_a_4xx_fails_at_once_without_retries(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.behaviour = script(then=(400, {}, b"bad"))
    await subscribe(client, receiver.url)
    decision = await score(client)
    delivery = await wait_delivery(client, "failed", event_ref=decision["id"])
    # "failed" is final: no attempt is scheduled, so the one made is the only one there will be.
    assert (delivery["next_attempt_at"], delivery["attempts_made"]) == (None, 1)
    assert len(delivery["attempts"]) == 1
    assert delivery["last_error_class"] == "http_4xx"
    assert len(receiver.received) == 1


async def test_410_disables_the_subscription(
    client: httpx.AsyncClient, receiver: Receiver, hook_settings: Settings
) -> None:
    receiver.behaviour = script(then=(410, {}, b""))
    subscription = await subscribe(client, receiver.url)
    decision = await score(client)
    await wait_delivery(client, "failed", event_ref=decision["id"])
    got = (await client.get(f"/v1/webhooks/subscriptions/{subscription['id']}")).json()
    assert (got["status"], got["disabled_reason"]) == ("disabled", "gone")

    later = await score(client)
    await wait_dispatched(hook_settings.database_url, later["id"])
    assert await deliveries(client, event_ref=later["id"]) == []
    assert len(receiver.received) == 1


async def test_exhausted_after_the_schedule_then_replayed(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.behaviour = script(then=(503, {}, b"down"))
    await subscribe(client, receiver.url)
    decision = await score(client)
    exhausted = await wait_delivery(client, "exhausted", event_ref=decision["id"])
    assert len(exhausted["attempts"]) == 3, "schedule 0s,100ms,100ms: three attempts"
    assert len(receiver.received) == 3

    receiver.behaviour = script()
    replayed = await client.post(f"/v1/webhooks/deliveries/{exhausted['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    again = await client.post(f"/v1/webhooks/deliveries/{exhausted['id']}/replay")
    assert again.status_code in (202, 409)
    delivered = await wait_delivery(client, "succeeded", event_ref=decision["id"])
    assert delivered["attempts"][0]["outcome"] == "succeeded"
    assert receiver.received[-1].headers["webhook-id"] == exhausted["id"]


async def test_recover_resends_everything_failed_since_a_time(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.behaviour = script(then=(400, {}, b""))
    subscription = await subscribe(client, receiver.url)
    since = datetime.now(UTC) - timedelta(seconds=1)
    decisions = [await score(client) for _ in range(3)]
    for decision in decisions:
        await wait_delivery(client, "failed", event_ref=decision["id"])
    receiver.behaviour = script()
    recovered = await client.post(
        f"/v1/webhooks/subscriptions/{subscription['id']}/recover",
        json={"since": since.isoformat()},
    )
    assert recovered.status_code == 202, recovered.text
    assert recovered.json() == {"requeued": 3}
    for decision in decisions:
        await wait_delivery(client, "succeeded", event_ref=decision["id"])


async def test_action_filter_delivers_only_hold_decisions(
    client: httpx.AsyncClient, receiver: Receiver, hook_settings: Settings
) -> None:
    await subscribe(client, receiver.url, actions=["hold"])
    review = await score(client)
    hold = await score(client, delay=1, weather=1, geo=1, payment_anomaly=1)
    await wait_dispatched(hook_settings.database_url, review["id"])
    assert await deliveries(client, event_ref=review["id"]) == [], "nothing to send, ever"
    [request] = await receiver.wait_for(1)
    assert json.loads(request.body)["data"]["id"] == hold["id"]
    await wait_delivery(client, "succeeded", event_ref=hold["id"])
    assert len(receiver.received) == 1


async def test_paused_subscription_holds_deliveries_until_resumed(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    subscription = await subscribe(client, receiver.url, paused=True)
    decision = await score(client)
    await wait_delivery(client, "held", event_ref=decision["id"])
    assert receiver.received == []
    resumed = await client.patch(
        f"/v1/webhooks/subscriptions/{subscription['id']}", json={"paused": False}
    )
    assert resumed.status_code == 200, resumed.text
    await receiver.wait_for(1)
    await wait_delivery(client, "succeeded", event_ref=decision["id"])


async def test_events_reach_only_subscriptions_of_their_own_client(
    app: RunningApp, client: httpx.AsyncClient, receiver: Receiver, hook_settings: Settings
) -> None:
    other_receiver = await Receiver().start()
    try:
        _, issued = await register_client(app.runtime)
        other = app.http_client({"X-API-Key": issued.api_key})
        await subscribe(other, other_receiver.url)
        own = await subscribe(client, receiver.url)
        mine = await score(client)
        [request] = await receiver.wait_for(1)
        assert json.loads(request.body)["data"]["id"] == mine["id"]
        await wait_dispatched(hook_settings.database_url, mine["id"])
        # Fanned out: the one delivery there will ever be for this event is the owner's.
        [delivery] = await deliveries(client, event_ref=mine["id"])
        assert delivery["subscription_id"] == own["id"]
        assert await deliveries(other, event_ref=mine["id"]) == []
        assert other_receiver.received == [], "another client's event never reaches it"
        await other.aclose()
    finally:
        await other_receiver.close()


async def test_transaction_events_are_delivered(
    app: RunningApp, client: httpx.AsyncClient, receiver: Receiver, hook_settings: Settings
) -> None:
    subscription = await subscribe(client, receiver.url, event_types=["transaction.flagged"])
    conn = await connect_as_app(hook_settings.database_url)
    try:
        owner = await conn.fetchval(
            "SELECT owner_client_id FROM webhook_subscriptions WHERE id = $1",
            uuid.UUID(subscription["id"]),
        )
        transaction = {"id": str(uuid.uuid4()), "status": "flagged_for_fraud", "amount": "12000.00"}
        for event_type in ("transaction.approved", "transaction.flagged"):
            await conn.execute(
                "INSERT INTO outbox (event_type, client_id, aggregate_id, payload)"
                " VALUES ($1, $2, $3, $4::jsonb)",
                event_type,
                owner,
                uuid.UUID(transaction["id"]),
                json.dumps(transaction),
            )
    finally:
        await conn.close()
    [request] = await receiver.wait_for(1)
    envelope = json.loads(request.body)
    assert (envelope["type"], envelope["data"]) == ("transaction.flagged", transaction)


async def test_test_webhook_to_a_subscription_and_to_a_bare_url(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    subscription = await subscribe(client, receiver.url, event_types=["transaction.approved"])
    sent = await client.post(
        "/v1/webhooks/test",
        json={"subscription_id": subscription["id"]},
        headers={"Idempotency-Key": new_key()},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["secret"] is None
    bare = await client.post(
        "/v1/webhooks/test", json={"url": receiver.url}, headers={"Idempotency-Key": new_key()}
    )
    assert bare.status_code == 202, bare.text
    first, second = sorted(await receiver.wait_for(2), key=lambda r: r.headers["webhook-id"])
    by_id = {r.headers["webhook-id"]: r for r in (first, second)}
    Webhook(subscription["secret"]).verify(
        by_id[sent.json()["delivery_id"]].body, by_id[sent.json()["delivery_id"]].headers
    )
    bare_request = by_id[bare.json()["delivery_id"]]
    assert (
        Webhook(bare.json()["secret"]).verify(bare_request.body, bare_request.headers)["type"]
        == "webhook.test"
    )
    got = await client.get(f"/v1/webhooks/deliveries/{bare.json()['delivery_id']}")
    assert got.json()["url"] == receiver.url


async def test_deliveries_reuse_connections(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, receiver.url)
    for n in range(1, 11):
        await score(client)
        try:
            await receiver.wait_for(n)
        except AssertionError:
            print(await deliveries(client))
            raise
    assert receiver.connections < 5


async def test_two_workers_never_deliver_one_attempt_twice_at_once(
    app: RunningApp, hook_settings: Settings, client: httpx.AsyncClient
) -> None:
    async def slowish(_: Received) -> tuple[int, dict[str, str], bytes]:
        await asyncio.sleep(0.01)
        return 200, {}, b"ok"

    receiver = await Receiver(slowish).start()
    try:
        await subscribe(client, receiver.url)
        async with running_worker(hook_settings), running_worker(hook_settings):
            decisions = await asyncio.gather(*(score(client) for _ in range(150)))
            received = await receiver.wait_for(150, timeout=30)
            await _wait_all_succeeded(hook_settings.database_url, {d["id"] for d in decisions})
        # Every delivery is recorded as done and both workers have stopped, attempts in flight
        # included: whatever was sent is in ``receiver.received`` now.
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(ids) == len(set(ids)) == len(decisions), "each delivered exactly once"
        assert {json.loads(r.body)["data"]["id"] for r in received} == {d["id"] for d in decisions}
    finally:
        await receiver.close()


async def test_worker_readiness_turns_unready_when_the_backlog_ages(
    app: RunningApp, hook_settings: Settings, postgres_admin_url: str, settings: Settings
) -> None:
    from riskgate.webhooks.health import serve_health
    from webhook_support import webhook_settings as build

    url = await fresh_database(postgres_admin_url, unique_db("ready"))
    own = build(settings, url, worker_concurrency=1, backlog_unready_seconds=0.5)
    release = asyncio.Event()

    async def stall(_: Received) -> tuple[int, dict[str, str], bytes]:
        await release.wait()
        return 200, {}, b"ok"

    receiver = await Receiver(stall).start()
    async with running_app(own) as own_app, running_worker(own) as worker:
        server = await serve_health("127.0.0.1", 0, worker.readiness)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                await _wait_ready(probe, 200)
                await subscribe(own_app.client, receiver.url)
                await score(own_app.client)
                await score(own_app.client)  # waits behind the stalled one (concurrency 1)
                unready = await _wait_ready(probe, 503)
                assert unready["oldest_pending_seconds"] > 0.5
                assert (await probe.get("/v1/health")).status_code == 200
                metrics = (await probe.get("/metrics")).text
                assert 'riskgate_webhook_backlog{queue="deliveries"}' in metrics
                release.set()
                await _wait_ready(probe, 200)
        finally:
            release.set()
            server.close()
            await receiver.close()


async def _wait_all_succeeded(database_url: str, events: set[str], timeout: float = 30) -> None:
    conn = await connect_as_app(database_url)
    try:
        deadline = time.monotonic() + timeout
        while await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries"
            " WHERE aggregate_id = ANY ($1::uuid[]) AND status = 'succeeded'",
            [uuid.UUID(e) for e in events],
        ) < len(events):
            assert time.monotonic() < deadline, "not every delivery was recorded as succeeded"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def _wait_ready(probe: httpx.AsyncClient, status: int, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = await probe.get("/v1/health/ready")
        if response.status_code == status:
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"readiness stayed {response.status_code}: {response.text}")
        await asyncio.sleep(0.1)


async def test_a_late_workers_real_result_replaces_the_lost_attempt(
    postgres_admin_url: str, settings: Settings
) -> None:
    """Worker A claims and stalls past its lease; B reclaims it (recording A's attempt as lost);
    then A reports after all. A's real outcome replaces the guess, and A no longer changes the
    delivery: B holds it. Driven through the worker's own queries, in a database no worker
    runs on."""
    url = await fresh_database(postgres_admin_url, unique_db("late"))
    async with running_app(webhook_settings(settings, url)) as own:
        pool = own.runtime.pool
        await subscribe(own.client, "http://127.0.0.1:9/hook")
        decision = await score(own.client)
        assert await repository.dispatch_outbox(pool, 10, 0.0) == (1, 1)
        [a] = await repository.claim_deliveries(pool, 1, 0.05, uuid.uuid4())
        await asyncio.sleep(0.1)  # A's lease runs out
        [b] = await repository.claim_deliveries(pool, 1, 60, uuid.uuid4())
        assert (b.id, b.attempt, b.reclaimed, a.reclaimed) == (a.id, a.attempt + 1, True, False)
        [lost] = (await deliveries(own.client, event_ref=decision["id"]))[0]["attempts"]
        assert (lost["attempt"], lost["outcome"]) == (1, "worker_lost")

        late = AttemptRecord(
            delivery_id=a.id,
            lock_token=a.lock_token,
            attempt=a.attempt,
            outcome="retrying",
            retry_in=0.0,
            started_at=datetime.now(UTC),
            duration_ms=12,
            status_code=503,
            error_class="http_5xx",
            response_body="busy",
        )
        assert await repository.finish_attempts(pool, [late]) == 0, "B holds the delivery"
        [delivery] = await deliveries(own.client, event_ref=decision["id"])
    assert delivery["attempts_made"] == 2
    [first] = delivery["attempts"]
    assert (first["attempt"], first["outcome"], first["status_code"]) == (1, "retrying", 503)
    assert first["duration_ms"] == 12

"""POST /v1/score end to end: the decision, what is stored with it, and shadow rule versions."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from conftest import (
    fresh_database,
    new_event_id,
    new_key,
    running_app,
    settings_with,
    superuser_url,
)
from riskgate.settings import Settings


def body(event_id: str, **signals: float) -> dict[str, Any]:
    values = {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0, **signals}
    return {"event_id": event_id, "source": "flight", "signals": values}


async def test_the_documented_example_scores_38_5_review(client: httpx.AsyncClient) -> None:
    event_id = new_event_id()
    response = await client.post(
        "/v1/score", json=body(event_id), headers={"Idempotency-Key": new_key()}
    )
    assert response.status_code == 201
    decision = response.json()
    assert decision["score"] == 38.5
    assert decision["action"] == "review"
    assert decision["score_version"] == "v0_rules"
    assert decision["event_id"] == event_id
    assert [r["signal"] for r in decision["reasons"]] == [
        "delay",
        "weather",
        "geo",
        "payment_anomaly",
    ]
    assert decision["trace_id"] == response.headers["x-trace-id"]
    assert response.headers["location"] == f"/v1/events/{decision['id']}"


async def test_an_incoming_traceparent_is_the_decisions_trace(client: httpx.AsyncClient) -> None:
    trace_id = uuid.uuid4().hex
    response = await client.post(
        "/v1/score",
        json=body(new_event_id()),
        headers={"Idempotency-Key": new_key(), "traceparent": f"00-{trace_id}-{'1' * 16}-01"},
    )
    assert response.json()["trace_id"] == trace_id


async def test_each_decision_writes_its_outbox_row_and_audit_row(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    response = await client.post(
        "/v1/score", json=body(new_event_id(), geo=1.0), headers={"Idempotency-Key": new_key()}
    )
    event = response.json()
    outbox = await db.fetch("SELECT * FROM outbox WHERE aggregate_id = $1", uuid.UUID(event["id"]))
    assert len(outbox) == 1
    assert outbox[0]["event_type"] == "decision.created"
    payload = json.loads(outbox[0]["payload"])
    assert (payload["id"], payload["action"], payload["score"]) == (event["id"], "review", 58.5)
    assert outbox[0]["traceparent"].split("-")[1] == event["trace_id"]
    assert outbox[0]["dispatched_at"] is None
    audit = await db.fetch(
        "SELECT action FROM audit_log WHERE entity_type = 'event' AND entity_id = $1", event["id"]
    )
    assert [row["action"] for row in audit] == ["decision.created"]


async def test_a_shadow_rule_version_is_stored_beside_the_active_decision_never_returned(
    postgres_admin_url: str, settings: Settings
) -> None:
    name = f"riskgate_shadow_{uuid.uuid4().hex[:8]}"
    url = await fresh_database(postgres_admin_url, name)
    admin = await asyncpg.connect(superuser_url(postgres_admin_url, name))  # rule versions: data
    try:
        await admin.execute(
            """INSERT INTO rule_versions
                   (version, weights, review_threshold, hold_threshold, status)
               VALUES ('v1_heavy_geo',
                       '{"delay": 10, "weather": 10, "geo": 60, "payment_anomaly": 20}',
                       20.0, 40.0, 'shadow')"""
        )
    finally:
        await admin.close()
    async with running_app(settings_with(settings, database_url=url)) as app:
        created = await app.client.post(
            "/v1/score", json=body(new_event_id()), headers={"Idempotency-Key": new_key()}
        )
        assert created.json()["score_version"] == "v0_rules"
        assert created.json()["score"] == 38.5
        event = (await app.client.get(created.headers["location"])).json()
        metrics = (await app.client.get("/metrics")).text

    [shadow] = event["shadow_decisions"]
    # 10*0.7 + 10*0.5 + 60*0.2 = 24.0: review under v1's thresholds (20 / 40)
    assert (shadow["score_version"], shadow["score"], shadow["action"]) == (
        "v1_heavy_geo",
        24.0,
        "review",
    )
    assert (
        'riskgate_decisions_total{action="review",mode="shadow",score_version="v1_heavy_geo"}'
        in metrics
    )

"""One client never sees, replays or collides with another client's events and keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import RunningApp, new_event_id, new_key, register_client
from riskgate.auth.repository import ClientRecord


@dataclass
class Tenant:
    record: ClientRecord
    http: httpx.AsyncClient

    @property
    def actor(self) -> str:
        return f"client:{self.record.name}"

    async def score(self, key: str, event_id: str, delay: float) -> httpx.Response:
        body = {
            "event_id": event_id,
            "source": "flight",
            "signals": {"delay": delay, "weather": 0, "geo": 0, "payment_anomaly": 0},
        }
        return await self.http.post("/v1/score", json=body, headers={"Idempotency-Key": key})

    async def listed(self, event_id: str) -> list[dict[str, Any]]:
        response = await self.http.get("/v1/events", params={"event_id": event_id})
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


async def tenant(app: RunningApp) -> Tenant:
    record, issued = await register_client(app.runtime)
    return Tenant(record, app.http_client({"X-API-Key": issued.api_key}))


@pytest.fixture
async def tenants(app: RunningApp) -> AsyncIterator[tuple[Tenant, Tenant]]:
    a, b = await tenant(app), await tenant(app)
    yield a, b
    await a.http.aclose()
    await b.http.aclose()


async def test_another_clients_event_is_invisible(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    event_id = new_event_id()
    created = await a.score(new_key(), event_id, delay=0.7)
    assert created.status_code == 201, created.text
    location = created.headers["location"]

    assert (await a.http.get(location)).status_code == 200
    foreign = await b.http.get(location)
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    assert event_id not in foreign.text

    assert [e["event_id"] for e in await a.listed(event_id)] == [event_id]
    assert await b.listed(event_id) == []
    listing = await b.http.get("/v1/events", params={"limit": 100})
    assert created.json()["id"] not in listing.text


async def test_same_idempotency_key_and_event_id_are_independent_per_client(
    tenants: tuple[Tenant, Tenant], db: asyncpg.Connection[Any]
) -> None:
    a, b = tenants
    key, event_id = new_key(), new_event_id()
    first = await a.score(key, event_id, delay=0.1)
    # Same key and event_id, different body: for the same client this would be a 409.
    second = await b.score(key, event_id, delay=0.9)

    assert first.status_code == second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["score"] != second.json()["score"], "b got its own decision, not a's"

    # Each client's retry replays its own response, never the other's.
    replay_a = await a.score(key, event_id, delay=0.1)
    replay_b = await b.score(key, event_id, delay=0.9)
    assert replay_a.headers["idempotent-replayed"] == "true"
    assert replay_b.headers["idempotent-replayed"] == "true"
    assert replay_a.content == first.content
    assert replay_b.content == second.content
    # And a's body under a's key is still a conflict for b, not a replay of a's response.
    assert (await b.score(key, event_id, delay=0.1)).status_code == 409

    [mine] = await a.listed(event_id)
    [theirs] = await b.listed(event_id)
    assert mine["id"] == first.json()["id"]
    assert theirs["id"] == second.json()["id"]

    rows = await db.fetch(
        "SELECT id, client_id FROM events WHERE event_id = $1 ORDER BY created_at", event_id
    )
    assert {(r["id"], r["client_id"]) for r in rows} == {
        (uuid.UUID(first.json()["id"]), a.record.id),
        (uuid.UUID(second.json()["id"]), b.record.id),
    }
    keys = await db.fetch("SELECT client_id FROM idempotency_keys WHERE key = $1", key)
    assert sorted(r["client_id"] for r in keys) == sorted([a.record.id, b.record.id])


async def test_audit_rows_name_each_clients_actor(
    tenants: tuple[Tenant, Tenant], db: asyncpg.Connection[Any]
) -> None:
    a, b = tenants
    key, event_id = new_key(), new_event_id()
    ids = {}
    for who in (a, b):
        response = await who.score(key, event_id, delay=0.5)
        assert response.status_code == 201, response.text
        ids[who.actor] = response.json()["id"]

    for who in (a, b):
        rows = await db.fetch(
            "SELECT actor, client_id, action FROM audit_log "
            "WHERE entity_type = 'event' AND entity_id = $1",
            ids[who.actor],
        )
        assert [(r["actor"], r["client_id"], r["action"]) for r in rows] == [
            (who.actor, who.record.id, "decision.created")
        ]
        trail = (await who.http.get(f"/v1/events/{ids[who.actor]}")).json()["audit_trail"]
        assert [entry["actor"] for entry in trail] == [who.actor]

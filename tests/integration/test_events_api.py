"""GET /v1/events/{id} and the cursor-paginated, filtered GET /v1/events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from conftest import RunningApp, new_event_id, new_key


async def score(
    client: httpx.AsyncClient, source: str, delay: float, event_id: str | None = None
) -> dict[str, Any]:
    body = {
        "event_id": event_id or new_event_id(),
        "source": source,
        "signals": {"delay": delay, "weather": 0, "geo": 0, "payment_anomaly": 0},
    }
    response = await client.post("/v1/score", json=body, headers={"Idempotency-Key": new_key()})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_location_points_at_the_event_with_decision_and_audit_trail(
    app: RunningApp, client: httpx.AsyncClient
) -> None:
    body = {
        "event_id": new_event_id(),
        "source": "hotel",
        "signals": {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0},
    }
    created = await client.post("/v1/score", json=body, headers={"Idempotency-Key": new_key()})
    event = (await client.get(created.headers["location"])).json()

    assert event["id"] == created.json()["id"]
    assert event["event_id"] == body["event_id"]
    assert event["signals"] == body["signals"]
    assert event["decision"]["score"] == 38.5
    assert event["decision"]["action"] == "review"
    assert event["decision"]["reasons"] == created.json()["reasons"]
    assert event["shadow_decisions"] == []
    [entry] = event["audit_trail"]
    assert entry["action"] == "decision.created"
    assert entry["actor"] == f"client:{app.caller.name}"
    assert entry["details"]["score"] == 38.5
    assert len(entry["hash"]) == 64


async def test_unknown_event_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/events/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_malformed_event_id_in_path_is_a_problem_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events/not-a-uuid")
    assert response.status_code in (404, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_pages_cover_every_event_once_newest_first(client: httpx.AsyncClient) -> None:
    source = f"s{uuid.uuid4().hex[:12]}"
    created = [await score(client, source, delay=i / 10) for i in range(7)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"source": source, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/events", params=params)).json()
        seen += [item["id"] for item in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [c["id"] for c in reversed(created)]


async def test_filters_by_action_source_and_time(client: httpx.AsyncClient) -> None:
    source = f"s{uuid.uuid4().hex[:12]}"
    before = datetime.now(UTC).isoformat()
    allow = await score(client, source, delay=0.1)
    review = await score(client, source, delay=1.0)
    after = datetime.now(UTC).isoformat()

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/events", params={"source": source, **params})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert await ids(action="allow") == [allow["id"]]
    assert await ids(action="review") == [review["id"]]
    assert await ids(action="hold") == []
    assert await ids(created_after=before, created_before=after) == [review["id"], allow["id"]]
    assert await ids(created_after=after) == []
    assert await ids(event_id=allow["event_id"]) == [allow["id"]]


async def test_bad_list_parameters_are_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    for params, field in [
        ({"action": "maybe"}, "action"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": "!!!"}, "cursor"),
        ({"created_after": "yesterday"}, "created_after"),
    ]:
        response = await client.get("/v1/events", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == field, response.json()

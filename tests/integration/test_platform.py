"""Health, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx

from conftest import new_event_id, new_key

ROUTES = {
    ("post", "/v1/score"),
    ("get", "/v1/events"),
    ("get", "/v1/events/{event_ref}"),
    ("get", "/v1/health"),
    ("get", "/v1/health/ready"),
}


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/health")).json() == {"status": "ok"}
    ready = await client.get("/v1/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "postgres": "up", "redis": "up"}


async def test_metrics_expose_requests_by_route_template_decisions_and_idempotency(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "event_id": new_event_id(),
        "source": "rail",
        "signals": {"delay": 1, "weather": 1, "geo": 1, "payment_anomaly": 1},
    }
    created = await client.post("/v1/score", json=body, headers={"Idempotency-Key": new_key()})
    await client.get(created.headers["location"])
    text = (await client.get("/metrics")).text

    assert 'riskgate_http_requests_total{method="POST",route="/v1/score",status="201"}' in text
    assert 'route="/v1/events/{event_ref}"' in text
    assert created.json()["id"] not in text, "raw paths never become labels"
    assert 'riskgate_http_request_duration_seconds_bucket{le="0.45"' in text
    assert 'riskgate_decisions_total{action="hold",mode="active",score_version="v0_rules"}' in text
    assert 'riskgate_idempotency_requests_total{outcome="new"}' in text


async def test_openapi_31_documents_every_route_body_and_problem(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert documented >= ROUTES
    score = spec["paths"]["/v1/score"]["post"]
    assert "requestBody" in score
    assert {"201", "400", "409", "413", "415", "422"} <= set(score["responses"])
    problem = score["responses"]["422"]["content"]["application/problem+json"]
    assert problem["schema"]


async def test_interactive_docs_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


async def test_unknown_route_and_wrong_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await client.delete("/v1/score")
    assert wrong.status_code == 405
    assert wrong.json()["type"].endswith("method-not-allowed")

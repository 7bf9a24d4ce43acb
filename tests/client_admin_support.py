"""Calls on the client admin API and on the credentials it hands out, shared by its tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from conftest import RunningApp

BASE = "/v1/admin/clients"
EVENTS = "/v1/events"  # events:read
SUBSCRIPTIONS = "/v1/webhooks/subscriptions"  # webhooks:read
SPEC: dict[str, Any] = {"scopes": ["events:read", "webhooks:read"], "rate_limit": "100/60s"}


def new_ref() -> tuple[str, str]:
    return "team-a", f"app-{uuid.uuid4().hex[:8]}"


def path(namespace: str, name: str, suffix: str = "") -> str:
    return f"{BASE}/{namespace}/{name}{suffix}"


async def token(app: RunningApp, client_id: str, secret: str) -> httpx.Response:
    return await app.anonymous.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


async def token_status(app: RunningApp, client_id: str, secret: str) -> int:
    return (await token(app, client_id, secret)).status_code


async def key_status(app: RunningApp, api_key: str, route: str = EVENTS) -> int:
    return (await app.anonymous.get(route, headers={"X-API-Key": api_key})).status_code


async def bearer_status(app: RunningApp, access_token: str, route: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return (await app.anonymous.get(route, headers=headers)).status_code


async def create(app: RunningApp, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    response = await app.client.put(path(namespace, name), json={**SPEC, **spec})
    assert response.status_code == 201, response.text
    credentials: dict[str, Any] = response.json()["credentials"]
    return credentials


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll ``check`` until it holds; the monotonic time it first did."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.1)
    return time.monotonic()

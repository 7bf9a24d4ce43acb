"""The token endpoint under attack: wrong secrets are limited per client_id and per source
address (429 with Retry-After, counted), and checking secrets never stalls anyone else.

Each test runs an app of its own with small limits; subjects (client names, addresses) are
unique per test, as the counters live in the shared Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from conftest import RunningApp, register_client, running_app, settings_with
from riskgate.settings import Settings

TOKEN = "/oauth2/token"


def unique_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def limited(policy: str) -> float:
    labels = {"policy": policy}
    return REGISTRY.get_sample_value("riskgate_rate_limited_requests_total", labels) or 0.0


async def token(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return await client.post(TOKEN, data=form)


@contextlib.asynccontextmanager
async def app_with(settings: Settings, **limits: Any) -> AsyncIterator[RunningApp]:
    async with running_app(settings_with(settings, **limits)) as app:
        yield app


def assert_too_many(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 60
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert body["type"] == "https://riskgate.io/problems/too-many-failed-attempts"


async def test_failed_attempts_per_client_id_are_limited_and_success_does_not_count(
    settings: Settings,
) -> None:
    async with app_with(settings, failed_auth_per_client="3/60s") as app:
        _, target = await register_client(app.runtime)
        _, other = await register_client(app.runtime)
        async with app.http_client({}, unique_address()) as guesser:
            for _ in range(3):
                assert (await token(guesser, target.client_id, "wrong")).status_code == 401
            before = limited("token-client")
            # Refused without looking at the secret: the right one too, from anywhere.
            assert_too_many(await token(guesser, target.client_id, target.client_secret))
            async with app.http_client({}, unique_address()) as elsewhere:
                assert_too_many(await token(elsewhere, target.client_id, target.client_secret))
            assert limited("token-client") == before + 2
            # Other clients are not affected; successes are never counted.
            for _ in range(5):
                assert (await token(guesser, other.client_id, other.client_secret)).is_success


async def test_failed_attempts_per_source_address_are_limited(settings: Settings) -> None:
    async with app_with(settings, failed_auth_per_address="4/60s") as app:
        _, victim = await register_client(app.runtime)
        address = unique_address()
        async with app.http_client({}, address) as sprayer:
            # A different client name every time: the per-client limit never bites.
            for _ in range(4):
                name = f"guess-{uuid.uuid4().hex[:8]}"
                assert (await token(sprayer, name, "wrong")).status_code == 401
            before = limited("token-address")
            assert_too_many(await token(sprayer, victim.client_id, victim.client_secret))
            assert limited("token-address") == before + 1
        async with app.http_client({}, unique_address()) as honest:
            assert (await token(honest, victim.client_id, victim.client_secret)).is_success


async def test_concurrent_guesses_never_overshoot_the_limit(settings: Settings) -> None:
    async with app_with(settings, failed_auth_per_client="5/60s") as app:
        _, target = await register_client(app.runtime)
        async with app.http_client({}, unique_address()) as guesser:
            answers = await asyncio.gather(
                *(token(guesser, target.client_id, f"wrong-{n}") for n in range(30))
            )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [401] * 5 + [429] * 25


async def test_past_the_hashing_queue_token_requests_are_shed_with_503(
    settings: Settings,
) -> None:
    async with app_with(settings, token_hash_threads=1, token_hash_queue=0) as app:
        _, client = await register_client(app.runtime)
        async with app.http_client({}, unique_address()) as http:
            answers = await asyncio.gather(
                *(token(http, client.client_id, client.client_secret) for _ in range(10))
            )
    shed = [a for a in answers if a.status_code == 503]
    assert {a.status_code for a in answers} == {200, 503}, [a.status_code for a in answers]
    assert shed[0].headers["retry-after"] == "1"
    assert shed[0].json()["type"] == "https://riskgate.io/problems/token-endpoint-busy"


async def _latencies(send: Any, count: int) -> list[float]:
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        response = await send()
        spent.append(time.perf_counter() - started)
        assert response.is_success, response.text
    return spent


@pytest.mark.slow
async def test_a_flood_of_wrong_secrets_leaves_other_clients_latency_alone(
    settings: Settings,
) -> None:
    """A few clients hammer the token endpoint with wrong secrets; meanwhile another client's
    API calls and token requests keep the latency they had before. Before the fix every guess
    ran scrypt on the event loop, unlimited: the others waited behind each one.

    The bounds leave room for a busy machine (the hashing thread competes with the loop for CPU,
    and the attackers' own client side runs on this loop too); on the old code the median was
    over a second."""
    limits = {
        "failed_auth_per_client": "5/60s",
        "failed_auth_per_address": "20/60s",
        "token_hash_threads": 1,
    }
    async with app_with(settings, **limits) as app:
        _, victim = await register_client(app.runtime)
        targets = [(await register_client(app.runtime))[1].client_id for _ in range(3)]
        calm = app.http_client({"X-API-Key": victim.api_key}, unique_address())
        attackers = [app.http_client({}, unique_address()) for _ in range(3)]
        stop = asyncio.Event()
        refused = [asyncio.Event() for _ in attackers]
        checked: list[int] = []

        async def guess(n: int) -> None:
            while not stop.is_set():
                status = (await token(attackers[n], targets[n], "wrong")).status_code
                assert status in (401, 429)
                if status == 429:
                    refused[n].set()
                else:
                    checked.append(n)

        async def api_call() -> httpx.Response:
            return await calm.get("/v1/events", params={"limit": 1})

        async def own_token() -> httpx.Response:
            return await token(calm, victim.client_id, victim.client_secret)

        try:
            api_before = statistics.median(await _latencies(api_call, 10))
            token_before = statistics.median(await _latencies(own_token, 3))
            flood = [asyncio.create_task(guess(n)) for n in range(3) for _ in range(2)]
            # While the first guesses are being hashed (the limits not reached yet):
            api_burst = await _latencies(api_call, 10)
            assert statistics.median(api_burst) < max(4 * api_before, 0.25), api_burst
            # Once every attacker is refused, the flood goes on, cheaply:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in refused)), 20)
            api_steady = await _latencies(api_call, 10)
            tokens_steady = await _latencies(own_token, 5)
            stop.set()
            await asyncio.gather(*flood)
        finally:
            stop.set()
            for client in (calm, *attackers):
                await client.aclose()

    assert len(checked) <= 3 * 5, "each target: no more guesses checked than its limit"
    assert statistics.median(api_steady) < max(4 * api_before, 0.25), api_steady
    assert statistics.median(tokens_steady) < max(3 * token_before, 0.4), (
        token_before,
        tokens_steady,
    )

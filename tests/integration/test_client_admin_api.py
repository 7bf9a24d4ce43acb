"""The client admin API (/v1/admin/clients/{namespace}/{name}) and rotation with an overlap,
over HTTP on the real app, PostgreSQL and Redis; the CLI as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from client_admin_support import (
    EVENTS,
    SPEC,
    SUBSCRIPTIONS,
    bearer_status,
    create,
    eventually,
    key_status,
    new_ref,
    path,
    token,
    token_status,
)
from conftest import RunningApp, client_audit, register_client, running_app, settings_with
from riskgate.auth.service import ClientAdmin
from riskgate.settings import Settings


async def test_put_creates_once_and_shows_the_credentials_only_then(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    namespace, name = new_ref()
    created = await app.client.put(path(namespace, name), json=SPEC)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    assert (body["client_id"], body["managed_ref"]) == (
        f"{namespace}.{name}",
        f"{namespace}/{name}",
    )
    assert (body["scopes"], body["rate_limit"], body["status"]) == (
        ["events:read", "webhooks:read"],
        "100/60s",
        "active",
    )
    issued = body["credentials"]
    assert issued["client_id"] == body["client_id"]
    assert body["api_key_prefixes"] == [issued["api_key"][:10]]

    granted = await token(app, issued["client_id"], issued["client_secret"])
    assert (granted.status_code, granted.json()["scope"]) == (200, "events:read webhooks:read")
    assert await key_status(app, issued["api_key"]) == 200

    again = await app.client.put(path(namespace, name), json=SPEC)
    assert again.status_code == 200
    assert again.json()["credentials"] is None
    assert issued["client_secret"] not in again.text
    read = await app.client.get(path(namespace, name))
    assert read.status_code == 200
    assert issued["client_secret"] not in read.text
    assert issued["api_key"] not in read.text
    assert "credentials" not in read.json()

    row = await db.fetchrow("SELECT * FROM clients WHERE name = $1", body["client_id"])
    assert row is not None
    assert row["secret_hash"].startswith("scrypt$")
    audit = await client_audit(db, body["client_id"])
    assert [action for action, _ in audit] == ["client.created"], "the same spec again: no write"
    assert audit[0][1]["managed_ref"] == f"{namespace}/{name}"


async def test_scope_change_narrows_new_tokens_and_old_ones(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    namespace, name = new_ref()
    issued = await create(app, namespace, name)
    old_token = (await token(app, issued["client_id"], issued["client_secret"])).json()
    assert await bearer_status(app, old_token["access_token"], SUBSCRIPTIONS) == 200

    changed = await app.client.put(path(namespace, name), json={**SPEC, "scopes": ["events:read"]})
    assert (changed.status_code, changed.json()["scopes"]) == (200, ["events:read"])

    new_token = (await token(app, issued["client_id"], issued["client_secret"])).json()
    assert new_token["scope"] == "events:read"
    # The token issued before still says webhooks:read, but never exceeds what the client holds.
    assert "webhooks:read" in old_token["scope"]
    assert await bearer_status(app, old_token["access_token"], SUBSCRIPTIONS) == 403
    assert await bearer_status(app, old_token["access_token"], EVENTS) == 200
    assert await key_status(app, issued["api_key"], SUBSCRIPTIONS) == 403
    actions = [(a, d.get("changed")) for a, d in await client_audit(db, issued["client_id"])]
    assert actions == [("client.created", None), ("client.updated", ["scopes"])]


async def test_disable_enable_and_delete(app: RunningApp, db: asyncpg.Connection[Any]) -> None:
    namespace, name = new_ref()
    issued = await create(app, namespace, name)
    client_id, secret, api_key = issued["client_id"], issued["client_secret"], issued["api_key"]
    access = (await token(app, client_id, secret)).json()["access_token"]

    disabled = await app.client.put(path(namespace, name), json={**SPEC, "status": "disabled"})
    assert (disabled.status_code, disabled.json()["status"]) == (200, "disabled")
    assert await token_status(app, client_id, secret) == 401
    assert await key_status(app, api_key) == 401
    assert await bearer_status(app, access, EVENTS) == 401

    enabled = await app.client.put(path(namespace, name), json=SPEC)
    assert enabled.json()["status"] == "active"
    assert await token_status(app, client_id, secret) == 200
    assert await key_status(app, api_key) == 200

    assert (await app.client.delete(path(namespace, name))).status_code == 204
    assert await token_status(app, client_id, secret) == 401
    assert await key_status(app, api_key) == 401
    assert await bearer_status(app, access, EVENTS) == 401
    assert (await app.client.get(path(namespace, name))).status_code == 404
    assert (await app.client.delete(path(namespace, name))).status_code == 404
    rotate = await app.client.post(path(namespace, name, "/rotate"), json={"overlap_seconds": 0})
    assert rotate.status_code == 404

    # The name is free again: the same resource applied anew is a new client, new credentials.
    again = await create(app, namespace, name)
    assert again["client_secret"] != secret
    assert await token_status(app, client_id, again["client_secret"]) == 200
    assert await token_status(app, client_id, secret) == 401
    tombstone = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'client.deleted' "
        "AND details->>'managed_ref' = $1",
        f"{namespace}/{name}",
    )
    assert tombstone == 1


async def test_rotation_keeps_old_credentials_through_the_overlap_only(app: RunningApp) -> None:
    namespace, name = new_ref()
    old = await create(app, namespace, name)
    client_id = old["client_id"]

    response = await app.client.post(path(namespace, name, "/rotate"), json={"overlap_seconds": 2})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    new = response.json()
    expires = datetime.fromisoformat(new["previous_credentials_expire_at"])
    assert new["client_secret"] != old["client_secret"]
    assert new["api_key"] != old["api_key"]
    shown = (await app.client.get(path(namespace, name))).json()
    assert shown["previous_credentials_expire_at"] == new["previous_credentials_expire_at"]
    assert len(shown["api_key_prefixes"]) == 2

    for secret in (old["client_secret"], new["client_secret"]):
        assert await token_status(app, client_id, secret) == 200
    for key in (old["api_key"], new["api_key"]):
        assert await key_status(app, key) == 200

    async def old_key_refused() -> bool:
        return await key_status(app, old["api_key"]) == 401

    async def old_secret_refused() -> bool:
        return await token_status(app, client_id, old["client_secret"]) == 401

    await eventually(old_key_refused, within=10)
    await eventually(old_secret_refused, within=10)
    # Same machine, same clock: the old credentials stopped no earlier than announced.
    assert datetime.now(UTC) >= expires
    assert await token_status(app, client_id, new["client_secret"]) == 200
    assert await key_status(app, new["api_key"]) == 200
    assert (await app.client.get(path(namespace, name))).json()["api_key_prefixes"] == [
        new["api_key"][:10]
    ]


async def test_rotating_during_an_overlap_ends_the_oldest_generation_at_once(
    app: RunningApp,
) -> None:
    namespace, name = new_ref()
    first = await create(app, namespace, name)
    rotate = path(namespace, name, "/rotate")
    second = (await app.client.post(rotate, json={"overlap_seconds": 3600})).json()
    third = (await app.client.post(rotate, json={"overlap_seconds": 3600})).json()
    client_id = first["client_id"]
    assert await token_status(app, client_id, first["client_secret"]) == 401
    assert await key_status(app, first["api_key"]) == 401
    for generation in (second, third):
        assert await token_status(app, client_id, generation["client_secret"]) == 200
        assert await key_status(app, generation["api_key"]) == 200

    cut = (await app.client.post(rotate, json={"overlap_seconds": 0})).json()
    assert cut["previous_credentials_expire_at"] is None
    for generation in (second, third):
        assert await token_status(app, client_id, generation["client_secret"]) == 401
        assert await key_status(app, generation["api_key"]) == 401
    assert await key_status(app, cut["api_key"]) == 200


@pytest.fixture
async def caching_app(settings: Settings) -> Any:
    async with running_app(settings_with(settings, auth_cache_seconds=60)) as running:
        yield running


async def test_an_api_key_cached_during_its_overlap_stops_when_the_overlap_ends(
    caching_app: RunningApp,
) -> None:
    """The cache keeps answers for 60 s here; a retired key's answer lives only as long as the
    key has left, so the key stops at its expiry, not up to a cache lifetime later. (A key
    cached before the rotation keeps its entry's remaining life, at most RISKGATE_AUTH_CACHE_
    SECONDS: the documented bound.)"""
    namespace, name = new_ref()
    old = await create(caching_app, namespace, name)
    rotated = await caching_app.client.post(
        path(namespace, name, "/rotate"), json={"overlap_seconds": 2}
    )
    assert rotated.status_code == 200
    assert await key_status(caching_app, old["api_key"]) == 200  # now cached, still valid

    async def refused() -> bool:
        return await key_status(caching_app, old["api_key"]) == 401

    await eventually(refused, within=10)
    assert datetime.now(UTC) >= datetime.fromisoformat(
        rotated.json()["previous_credentials_expire_at"]
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["events:read", "everything:admin"]}, "scopes[1]"),
        ({"scopes": ["clients:admin"]}, "scopes[0]"),
        ({"scopes": ["events:read"], "rate_limit": "lots"}, "rate_limit"),
        ({"scopes": ["events:read"], "rate_limit": "100/60s" * 10}, "rate_limit"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["events:read"], "status": "paused"}, "status"),
    ],
)
async def test_bad_specs_are_422_naming_the_field(
    app: RunningApp, body: dict[str, Any], field: str
) -> None:
    namespace, name = new_ref()
    response = await app.client.put(path(namespace, name), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (await app.client.get(path(namespace, name))).status_code == 404


async def test_a_name_too_long_for_a_client_is_422_naming_the_name(app: RunningApp) -> None:
    response = await app.client.put(path("team-a", "x" * 60), json=SPEC)
    assert (response.status_code, response.json()["field"]) == (422, "name")


async def test_a_clash_with_a_client_made_otherwise_is_409_naming_it(app: RunningApp) -> None:
    namespace, name = new_ref()
    # What `riskgate clients create` runs.
    await ClientAdmin(app.runtime.pool).create(f"{namespace}.{name}", "events:read")
    response = await app.client.put(path(namespace, name), json=SPEC)
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/client-name-taken")
    assert f"{namespace}.{name}" in problem["detail"]
    assert (await app.client.get(path(namespace, name))).status_code == 404


async def test_without_the_admin_scope_every_route_is_403(app: RunningApp) -> None:
    namespace, name = new_ref()
    await create(app, namespace, name)
    scopes = "score:write events:read webhooks:read webhooks:write subscriptions:sync"
    _, other = await register_client(app.runtime, scopes)
    async with app.http_client({"X-API-Key": other.api_key}) as caller:
        answers = [
            await caller.put(path(namespace, name), json=SPEC),
            await caller.get(path(namespace, name)),
            await caller.post(path(namespace, name, "/rotate"), json={"overlap_seconds": 0}),
            await caller.delete(path(namespace, name)),
        ]
    assert [a.status_code for a in answers] == [403] * 4
    assert all("clients:admin" in a.json()["detail"] for a in answers)


async def test_concurrent_puts_of_one_reference_create_one_client(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    namespace, name = new_ref()
    answers = await asyncio.gather(
        *(app.client.put(path(namespace, name), json=SPEC) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    rows = await db.fetchval(
        "SELECT count(*) FROM clients WHERE managed_ref = $1", f"{namespace}/{name}"
    )
    assert rows == 1
    audit = await client_audit(db, f"{namespace}.{name}")
    assert [action for action, _ in audit] == ["client.created"]


# --- the CLI on a managed client -------------------------------------------------------------


async def riskgate(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "riskgate",
        *args,
        env={**env, "RISKGATE_DATABASE_URL": database_url, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_refuses_to_change_a_managed_client_with_exit_2(
    app: RunningApp, database_url: str, tmp_path: Any
) -> None:
    namespace, name = new_ref()
    issued = await create(app, namespace, name)
    client_id = issued["client_id"]
    secret_file = tmp_path / "secret"
    secret_file.write_text("a-secret-of-the-cli-side")
    expected = (
        f"client {client_id} is managed by the Kubernetes ApiClient {namespace}/{name}; "
        "change that resource instead"
    )
    runs = [
        await riskgate(database_url, "clients", "disable", client_id),
        await riskgate(database_url, "clients", "enable", client_id),
        await riskgate(database_url, "clients", "rotate", client_id, "--overlap", "1h"),
        await riskgate(
            database_url,
            *("clients", "ensure", "--name", client_id, "--scopes", "score:write"),
            *("--secret-file", str(secret_file)),
        ),
    ]
    for code, out, err in runs:
        assert code == 2, err
        assert expected in err
        assert "client_secret" not in out
    assert await token_status(app, client_id, issued["client_secret"]) == 200
    assert await key_status(app, issued["api_key"]) == 200
    assert (await app.client.get(path(namespace, name))).json()["scopes"] == SPEC["scopes"]


async def test_cli_rotate_with_an_overlap_keeps_both_secrets_working(
    app: RunningApp, database_url: str
) -> None:
    record, old = await register_client(app.runtime, "events:read")
    code, out, err = await riskgate(
        database_url, "clients", "rotate", record.name, "--overlap", "1h"
    )
    assert code == 0, err
    assert "work until" in err
    new_secret = next(
        line.split()[1] for line in out.splitlines() if line.startswith("client_secret")
    )
    new_key = next(line.split()[1] for line in out.splitlines() if line.startswith("api_key"))
    for secret in (old.client_secret, new_secret):
        assert await token_status(app, record.name, secret) == 200
    for key in (old.api_key, new_key):
        assert await key_status(app, key) == 200


async def test_cli_rotate_refuses_a_bad_overlap(database_url: str) -> None:
    code, _, err = await riskgate(
        database_url, "clients", "rotate", "any-client", "--overlap", "soon"
    )
    assert code == 2
    assert "--overlap" in err

"""``ClientAdmin.ensure`` in process: what each change writes and audits, and that many
concurrent runs settle on one write (``riskgate clients ensure`` itself: test_clients_cli.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from conftest import RunningApp, client_audit
from riskgate.auth.credentials import verify_secret
from riskgate.auth.service import ClientAdmin, Ensured


def new_name() -> str:
    return f"ensure-{uuid.uuid4().hex[:10]}"


def new_secret() -> str:
    return f"rgs_{uuid.uuid4().hex}"


async def test_scopes_and_rate_limit_changes_are_audited_with_the_new_values(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    admin, name, secret = ClientAdmin(app.runtime.pool), new_name(), new_secret()
    assert (await admin.ensure(name, "events:read", secret)).created

    widened = await admin.ensure(name, "events:read score:write", secret, rate_limit="9/1h")
    assert widened == Ensured(created=False, changed=("scopes", "rate_limit"), active=True)
    # Omitting the rate limit means the default policy again, as a fresh client would have.
    back = await admin.ensure(name, "events:read score:write", secret)
    assert back.changed == ("rate_limit",)

    row = await db.fetchrow("SELECT scopes, rate_limit FROM clients WHERE name = $1", name)
    assert row is not None
    assert (sorted(row["scopes"]), row["rate_limit"]) == (["events:read", "score:write"], None)
    audit = await client_audit(db, name)
    assert [(action, details.get("changed")) for action, details in audit] == [
        ("client.created", None),
        ("client.updated", ["scopes", "rate_limit"]),
        ("client.updated", ["rate_limit"]),
    ]
    assert audit[1][1]["scopes"] == ["events:read", "score:write"]
    assert audit[1][1]["rate_limit"] == "9/1h"
    assert secret not in json.dumps(audit)


async def test_a_disabled_client_stays_disabled(app: RunningApp) -> None:
    admin, name, secret = ClientAdmin(app.runtime.pool), new_name(), new_secret()
    await admin.ensure(name, "events:read", secret)
    await admin.set_active(name, False)

    again = await admin.ensure(name, "events:read score:write", secret)
    assert again == Ensured(created=False, changed=("scopes",), active=False)
    assert not await admin.set_active(name, False)  # still disabled: nothing to change


async def test_four_concurrent_ensures_make_one_client_then_one_secret_change(
    app: RunningApp, db: asyncpg.Connection[Any]
) -> None:
    admin, name, first, second = (
        ClientAdmin(app.runtime.pool),
        new_name(),
        new_secret(),
        new_secret(),
    )
    created = await asyncio.gather(*(admin.ensure(name, "events:read", first) for _ in range(4)))
    assert sorted(done.created for done in created) == [False] * 3 + [True]

    # Every run reads the old row before any writes it; the compare-and-set lets one win and
    # sends the others back to read again, where they find nothing left to do.
    rotated = await asyncio.gather(*(admin.ensure(name, "events:read", second) for _ in range(4)))
    assert sorted(done.changed for done in rotated) == [()] * 3 + [("secret",)]

    stored = await db.fetchval("SELECT secret_hash FROM clients WHERE name = $1", name)
    assert verify_secret(second, stored)
    assert [action for action, _ in await client_audit(db, name)] == [
        "client.created",
        "client.updated",
    ]

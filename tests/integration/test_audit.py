"""The audit log: one chained row per decision, tamper detection, append-only enforcement.

Tampering happens only on databases of its own (``chain_db``), never on the per-worker test
database other tests share: a broken chain there would fail every later verification.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import RunningApp, fresh_database, new_event_id, new_key, superuser_url
from riskgate.audit.service import GENESIS_HASH, ChainReport, published_heads, verify_chain

ENTRIES = 5
APP_ROLE = "riskgate_app"


def score_request(event_id: str) -> dict[str, object]:
    signals = {"delay": 0.9, "weather": 0.4, "geo": 0.1, "payment_anomaly": 1}
    return {"event_id": event_id, "source": "rail", "signals": signals}


async def score(client: httpx.AsyncClient, event_id: str, key: str | None = None) -> httpx.Response:
    response = await client.post(
        "/v1/score", json=score_request(event_id), headers={"idempotency-key": key or new_key()}
    )
    assert response.status_code in (200, 201), response.text
    return response


async def audit_rows_for(db: asyncpg.Connection[Any], event_ref: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT chain, seq, prev_hash, hash, actor, action, details FROM audit_log "
        "WHERE entity_type = 'event' AND entity_id = $1 ORDER BY id",
        event_ref,
    )


async def hash_of(db: asyncpg.Connection[Any], chain: int, seq: int) -> bytes:
    """The hash of entry ``seq`` of ``chain`` (the genesis hash before the first entry)."""
    if seq == 0:
        return GENESIS_HASH
    value: bytes = await db.fetchval(
        "SELECT hash FROM audit_log WHERE chain = $1 AND seq = $2", chain, seq
    )
    return value


async def test_each_score_writes_exactly_one_audit_row_chained_to_the_previous(
    app: RunningApp, client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    positions = []
    for _ in range(3):
        event_id = new_event_id()
        decision = (await score(client, event_id)).json()
        [row] = await audit_rows_for(db, decision["id"])
        assert (row["actor"], row["action"]) == (f"client:{app.caller.name}", "decision.created")
        assert json.loads(row["details"]) == {
            "event_id": event_id,
            "score": decision["score"],
            "action": decision["action"],
            "score_version": decision["score_version"],
        }
        assert bytes(row["prev_hash"]) == await hash_of(db, row["chain"], row["seq"] - 1)
        positions.append((row["chain"], row["seq"]))
    assert len(set(positions)) == 3


async def test_replay_and_rejected_duplicate_write_no_audit_row(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    event_id, key = new_event_id(), new_key()
    first = await score(client, event_id, key)
    before = await db.fetchval("SELECT count(*) FROM audit_log")
    replay = await score(client, event_id, key)
    assert replay.headers["idempotent-replayed"] == "true"
    duplicate = await client.post(
        "/v1/score", json=score_request(event_id), headers={"idempotency-key": new_key()}
    )
    assert duplicate.status_code == 409, duplicate.text
    assert await db.fetchval("SELECT count(*) FROM audit_log") == before
    assert len(await audit_rows_for(db, first.json()["id"])) == 1


async def test_event_detail_carries_its_audit_entry(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    decision = (await score(client, new_event_id())).json()
    [row] = await audit_rows_for(db, decision["id"])
    detail = await client.get(f"/v1/events/{decision['id']}")
    assert detail.status_code == 200, detail.text
    [entry] = detail.json()["audit_trail"]
    assert (entry["chain"], entry["seq"], entry["hash"]) == (
        row["chain"],
        row["seq"],
        bytes(row["hash"]).hex(),
    )


# --- a chain of its own, to verify and to tamper with -------------------------------------


@asynccontextmanager
async def own_database(admin_url: str) -> AsyncIterator[str]:
    """A fresh migrated database for one test, dropped when it ends."""
    name = f"riskgate_audit_{uuid.uuid4().hex[:16]}"
    await fresh_database(admin_url, name)
    url = superuser_url(admin_url, name)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def chain_db(postgres_admin_url: str) -> AsyncIterator[str]:
    """A database of its own holding ``ENTRIES`` chained audit rows."""
    async with own_database(postgres_admin_url) as url:
        await append_entries(url, ENTRIES)
        yield url


async def append_entries(url: str, count: int) -> None:
    """Insert rows the way the app does: the insert trigger assigns seq and chains them."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details) "
            "SELECT NULL, 'test', 'decision.created', 'event', g::text, jsonb_build_object('n', g) "
            "FROM generate_series(1, $1) AS g",
            count,
        )
    finally:
        await conn.close()


async def verify(url: str, anchors: dict[int, tuple[int, bytes]] | None = None) -> ChainReport:
    conn = await asyncpg.connect(url)
    try:
        return await verify_chain(conn, anchors)
    finally:
        await conn.close()


async def tamper(url: str, sql: str, *args: object) -> None:
    """Run ``sql`` as the superuser with the append-only triggers switched off."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_verify_reports_an_intact_chain(chain_db: str) -> None:
    assert await verify(chain_db) == ChainReport(checked=ENTRIES)


async def test_entries_from_many_sessions_verify_chain_by_chain(postgres_admin_url: str) -> None:
    """Concurrent sessions write to different chains; a break is named by chain and entry."""
    async with own_database(postgres_admin_url) as url:
        await asyncio.gather(*(append_entries(url, 3) for _ in range(8)))
        conn = await asyncpg.connect(url)
        try:
            chains = [r["chain"] for r in await conn.fetch("SELECT DISTINCT chain FROM audit_log")]
        finally:
            await conn.close()
        assert len(chains) > 1, "eight sessions should not all land on one chain"
        assert await verify(url) == ChainReport(checked=24)

        victim = max(chains)
        await tamper(
            url,
            """UPDATE audit_log SET details = '{"n": -1}' WHERE chain = $1 AND seq = 2""",
            victim,
        )
        report = await verify(url)
        assert (report.broken_chain, report.broken_at) == (victim, 2)
        assert "modified" in str(report.problem)


async def test_verify_reports_an_empty_chain_as_intact(postgres_admin_url: str) -> None:
    async with own_database(postgres_admin_url) as url:
        report = await verify(url)
    assert report == ChainReport(checked=0)


async def test_modified_entry_is_reported_at_its_seq(chain_db: str) -> None:
    await tamper(chain_db, """UPDATE audit_log SET details = '{"n": 99}' WHERE seq = 3""")
    report = await verify(chain_db)
    assert (report.broken_at, report.checked) == (3, 2)
    assert "modified" in str(report.problem)


REWRITE_WITH_HASH = """
    UPDATE audit_log SET details = '{"n": 99}',
           hash = audit_entry_hash(prev_hash, chain, seq, occurred_at, client_id, actor,
                                   action, entity_type, entity_id, '{"n": 99}')
    WHERE seq = $1
"""
"""Entry $1 changed, its own hash recomputed to match."""


async def test_modified_entry_with_recomputed_hash_breaks_the_next_link(chain_db: str) -> None:
    await tamper(chain_db, REWRITE_WITH_HASH, 3)
    report = await verify(chain_db)
    assert report.broken_at == 4
    assert "re-linked" in str(report.problem)


async def test_deleted_middle_entry_is_reported_as_a_deletion(chain_db: str) -> None:
    await tamper(chain_db, "DELETE FROM audit_log WHERE seq = 3")
    report = await verify(chain_db)
    assert (report.broken_at, report.checked) == (3, 2)
    assert "deleted" in str(report.problem)


async def test_deleted_last_entry_is_reported_as_removed_from_the_end(chain_db: str) -> None:
    await tamper(chain_db, "DELETE FROM audit_log WHERE seq = $1", ENTRIES)
    report = await verify(chain_db)
    assert (report.broken_at, report.checked) == (ENTRIES, ENTRIES - 1)
    assert "removed from the end" in str(report.problem)


FORGE_NEXT = """
    INSERT INTO audit_log (chain, seq, occurred_at, client_id, actor, action, entity_type,
                           entity_id, details, prev_hash, hash)
    SELECT chain, seq + 1, now(), NULL, 'mallory', 'decision.created', 'event', 'forged', '{}',
           hash, audit_entry_hash(hash, chain, seq + 1, now(), NULL,
                                  'mallory', 'decision.created', 'event', 'forged', '{}')
    FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)
"""
"""A well-formed entry after the last one, written with the insert trigger off."""

REWIND_HEAD = """
    UPDATE audit_chain_head h SET last_seq = l.seq, last_hash = l.hash
    FROM audit_log l WHERE l.chain = h.chain AND l.seq = $1
"""


async def test_forged_entry_appended_past_the_head_is_named_at_its_seq(chain_db: str) -> None:
    await tamper(chain_db, FORGE_NEXT)
    report = await verify(chain_db)
    assert (report.broken_at, report.checked) == (ENTRIES + 1, ENTRIES)
    assert "appended without the insert trigger" in str(report.problem)


async def test_last_entry_rewritten_with_its_hash_is_named_as_rewritten(chain_db: str) -> None:
    await tamper(chain_db, REWRITE_WITH_HASH, ENTRIES)
    report = await verify(chain_db)
    assert (report.broken_at, report.checked) == (ENTRIES, ENTRIES - 1)
    assert "rewritten" in str(report.problem)


async def published(url: str) -> dict[int, tuple[int, bytes]]:
    conn = await asyncpg.connect(url)
    try:
        return (await published_heads(conn)).anchors()
    finally:
        await conn.close()


async def test_published_heads_catch_a_tail_removed_with_its_head(chain_db: str) -> None:
    anchors = await published(chain_db)
    await tamper(chain_db, REWIND_HEAD, ENTRIES - 2)
    await tamper(chain_db, "DELETE FROM audit_log WHERE seq > $1", ENTRIES - 2)
    assert (await verify(chain_db)).intact  # consistent by itself: only the anchor can tell
    report = await verify(chain_db, anchors)
    assert (report.broken_at, report.checked) == (ENTRIES - 1, ENTRIES - 2)
    assert f"a published head records entry {ENTRIES}" in str(report.problem)


async def test_published_heads_catch_a_rewritten_tail(chain_db: str) -> None:
    anchors = await published(chain_db)
    await tamper(chain_db, "DELETE FROM audit_log WHERE seq = $1", ENTRIES)
    await tamper(chain_db, REWIND_HEAD, ENTRIES - 1)
    await tamper(chain_db, FORGE_NEXT)  # a different entry 5, in the deleted one's place
    await tamper(chain_db, REWIND_HEAD, ENTRIES)
    assert (await verify(chain_db)).intact
    report = await verify(chain_db, anchors)
    assert (report.broken_at, report.checked) == (ENTRIES, ENTRIES - 1)
    assert "differs from the published head" in str(report.problem)


async def test_published_heads_accept_a_chain_that_grew_since(chain_db: str) -> None:
    anchors = await published(chain_db)
    await append_entries(chain_db, 2)
    assert await verify(chain_db, anchors) == ChainReport(checked=ENTRIES + 2)


# --- append-only enforcement ---------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE audit_log SET actor = 'mallory'", id="update"),
        pytest.param("DELETE FROM audit_log", id="delete"),
        pytest.param("TRUNCATE audit_log", id="truncate"),
        pytest.param("UPDATE audit_chain_head SET last_seq = 0", id="update-chain-head"),
        pytest.param("SET session_replication_role = replica", id="disable-triggers"),
    ],
)
async def test_app_role_cannot_rewrite_the_audit_log(chain_db: str, statement: str) -> None:
    conn = await asyncpg.connect(chain_db)
    try:
        await conn.execute(f"SET ROLE {APP_ROLE}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(statement)
    finally:
        await conn.close()
    assert await verify(chain_db) == ChainReport(checked=ENTRIES)


async def test_app_role_can_append_and_the_chain_stays_intact(chain_db: str) -> None:
    conn = await asyncpg.connect(chain_db)
    try:
        await conn.execute(f"SET ROLE {APP_ROLE}")
        await conn.execute(
            "INSERT INTO audit_log (actor, action, entity_type, entity_id, details) "
            """VALUES ('app', 'decision.created', 'event', 'x', '{}')"""
        )
    finally:
        await conn.close()
    assert await verify(chain_db) == ChainReport(checked=ENTRIES + 1)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", id="update"),
        pytest.param("DELETE FROM audit_log WHERE seq = 1", id="delete"),
        pytest.param("TRUNCATE audit_log", id="truncate"),
    ],
)
async def test_even_the_owner_hits_the_append_only_trigger(chain_db: str, statement: str) -> None:
    conn = await asyncpg.connect(chain_db)  # superuser, owner of the table, triggers on
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
    finally:
        await conn.close()
    assert await verify(chain_db) == ChainReport(checked=ENTRIES)


# --- riskgate audit verify -----------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    returncode: int
    output: str


async def run_audit_cli(database_url: str, *args: str) -> Completed:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    env["RISKGATE_DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "riskgate",
        "audit",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        stdout, _ = await proc.communicate()
    assert proc.returncode is not None
    return Completed(proc.returncode, stdout.decode())


async def run_verify_cli(database_url: str, *args: str) -> Completed:
    return await run_audit_cli(database_url, "verify", *args)


async def test_cli_verify_on_an_intact_chain_exits_0(chain_db: str) -> None:
    result = await run_verify_cli(chain_db)
    assert result.returncode == 0, result.output
    assert f"intact: {ENTRIES} entries verified" in result.output


async def test_cli_verify_on_a_tampered_chain_exits_1_naming_the_entry(chain_db: str) -> None:
    await tamper(chain_db, "DELETE FROM audit_log WHERE seq = 2")
    result = await run_verify_cli(chain_db)
    assert result.returncode == 1, result.output
    assert "BROKEN at entry 2: expected entry 2 next, found 3" in result.output


async def test_cli_heads_are_published_and_verify_against_them(
    chain_db: str, tmp_path: Path
) -> None:
    heads = await run_audit_cli(chain_db, "heads")
    assert heads.returncode == 0, heads.output
    document = json.loads(heads.output)
    [chain] = [c for c in document["chains"] if c["seq"]]
    assert chain["seq"] == ENTRIES
    conn = await asyncpg.connect(chain_db)
    try:
        assert bytes.fromhex(chain["hash"]) == await hash_of(conn, chain["chain"], ENTRIES)
    finally:
        await conn.close()
    published_file = tmp_path / "heads.json"
    published_file.write_text(heads.output)

    intact = await run_verify_cli(chain_db, "--against", str(published_file))
    assert intact.returncode == 0, intact.output
    assert "intact" in intact.output

    await tamper(chain_db, REWIND_HEAD, ENTRIES - 1)
    await tamper(chain_db, "DELETE FROM audit_log WHERE seq = $1", ENTRIES)
    broken = await run_verify_cli(chain_db, "--against", str(published_file))
    assert broken.returncode == 1, broken.output
    assert f"BROKEN at entry {ENTRIES}: chain ends at entry {ENTRIES - 1}" in broken.output


async def test_cli_verify_refuses_a_file_that_is_not_published_heads(
    chain_db: str, tmp_path: Path
) -> None:
    bad = tmp_path / "heads.json"
    bad.write_text('{"taken_at": "2026-12-01T00:00:00Z", "chains": [{"chain": 0}]}')
    result = await run_verify_cli(chain_db, "--against", str(bad))
    assert result.returncode == 2, result.output
    assert "not a file printed by `riskgate audit heads`" in result.output

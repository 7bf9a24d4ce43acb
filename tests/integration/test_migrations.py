"""The migrations: the schema they build, and how ``migrate()`` behaves when run again,
concurrently, or against a history it does not recognise.

The schema snapshot lives in ``expected_schema.txt`` beside this file. After an intended
schema change (a new migration), regenerate it and review the diff in the pull request::

    RISKGATE_UPDATE_SCHEMA_SNAPSHOT=1 python -m pytest \
        tests/integration/test_migrations.py -k snapshot
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from conftest import fresh_database, owner_url, superuser_url
from riskgate.migrate import MigrationError, available_migrations, migrate
from riskgate_dev.embedded import EmbeddedPostgres

SNAPSHOT = Path(__file__).with_name("expected_schema.txt")
UPDATE_ENV = "RISKGATE_UPDATE_SCHEMA_SNAPSHOT"

# Each query yields (sort key, text); the text of a section is its rows sorted by key.
SCHEMA_QUERIES: dict[str, str] = {
    # Which migrations the snapshot was built from: a new migration always updates it.
    "applied migrations": """
        SELECT lpad(version::text, 4, '0'), lpad(version::text, 4, '0') || '_' || name
        FROM schema_migrations""",
    "columns": """
        SELECT table_name || '.' || column_name,
               table_name || '.' || column_name || ' ' || data_type
               || CASE data_type WHEN 'numeric'
                      THEN '(' || numeric_precision || ',' || numeric_scale || ')' ELSE '' END
               || CASE is_nullable WHEN 'NO' THEN ' NOT NULL' ELSE '' END
               || coalesce(' DEFAULT ' || column_default, '')
               || CASE is_identity WHEN 'YES' THEN ' IDENTITY ' || identity_generation ELSE '' END
        FROM information_schema.columns
        WHERE table_schema = 'public'""",
    "indexes": """
        SELECT indexname, tablename || ': ' || indexdef
        FROM pg_indexes WHERE schemaname = 'public'""",
    "constraints": """
        SELECT c.relname || '.' || con.conname,
               c.relname || '.' || con.conname || ': ' || pg_get_constraintdef(con.oid)
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'""",
    "triggers": """
        SELECT c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal""",
    "functions": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'""",
    "grants to the app role": """
        SELECT table_name || ' ' || privilege_type, table_name || ': ' || privilege_type
        FROM information_schema.role_table_grants
        WHERE grantee = 'riskgate_app' AND table_schema = 'public'
        UNION ALL
        SELECT routine_name || ' ' || privilege_type, routine_name || '(): ' || privilege_type
        FROM information_schema.role_routine_grants
        WHERE grantee = 'riskgate_app' AND routine_schema = 'public'""",
}


async def schema_text(url: str) -> str:
    """The schema of ``url`` as sorted, readable text: one section per kind of object."""
    conn = await asyncpg.connect(url)
    try:
        sections = []
        for title, query in SCHEMA_QUERIES.items():
            rows = sorted(tuple(row) for row in await conn.fetch(query))
            lines = [text.strip() for _, text in rows]
            sections.append(f"## {title}\n" + "\n".join(lines))
    finally:
        await conn.close()
    return "\n\n".join(sections) + "\n"


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def empty_database(admin_url: str) -> AsyncIterator[str]:
    """A new database with nothing in it (not migrated), dropped afterwards."""
    name = f"riskgate_migrations_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield superuser_url(admin_url, name)
    finally:
        await drop_database(admin_url, name)


@pytest.fixture
async def migrated_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A freshly migrated database of this test's own (it may be damaged), dropped afterwards."""
    name = f"riskgate_migrations_{uuid.uuid4().hex[:16]}"
    await fresh_database(postgres_admin_url, name)
    yield owner_url(postgres_admin_url, name)  # as `riskgate migrate` logs in
    await drop_database(postgres_admin_url, name)


async def applied_history(url: str) -> list[tuple[int, str, str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
        )
    finally:
        await conn.close()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def execute(url: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


# --- the schema ----------------------------------------------------------------------------


async def test_migrated_schema_matches_the_snapshot(migrated_url: str) -> None:
    actual = await schema_text(migrated_url)
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOT.write_text(actual, encoding="utf-8")
        pytest.skip(f"{SNAPSHOT.name} rewritten; review it with git diff")
    expected = SNAPSHOT.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{SNAPSHOT.name} (expected)",
                tofile="migrated database (actual)",
            )
        )
        pytest.fail(
            f"schema drift; if intended, regenerate with {UPDATE_ENV}=1 and review:\n{diff}",
            pytrace=False,
        )


# --- running migrate() -----------------------------------------------------------------------


async def test_concurrent_runs_apply_each_migration_exactly_once(postgres_admin_url: str) -> None:
    shipped = [m.version for m in available_migrations()]
    async with empty_database(postgres_admin_url) as url:
        results = await asyncio.gather(*(migrate(url) for _ in range(4)))
        applied = Counter(m.version for result in results for m in result)
        assert applied == Counter(shipped)
        assert sum(1 for result in results if result) == 1, "one runner did all the work"
        assert [row[0] for row in await applied_history(url)] == shipped


async def test_rerun_is_a_no_op(migrated_url: str) -> None:
    before_history = await applied_history(migrated_url)
    before_schema = await schema_text(migrated_url)
    assert await migrate(migrated_url) == []
    assert await applied_history(migrated_url) == before_history
    assert await schema_text(migrated_url) == before_schema


async def test_changed_checksum_of_an_applied_migration_is_refused(migrated_url: str) -> None:
    await execute(
        migrated_url, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(migrated_url)


async def test_unknown_newer_migration_in_the_database_is_refused(migrated_url: str) -> None:
    await execute(
        migrated_url,
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')",
    )
    with pytest.raises(MigrationError, match="9999"):
        await migrate(migrated_url)


async def test_refused_run_releases_the_migration_lock(migrated_url: str) -> None:
    """A refused run must not leave the advisory lock held, or the next runner would hang."""
    await execute(
        migrated_url, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"
    )
    with pytest.raises(MigrationError):
        await migrate(migrated_url)
    checksum = available_migrations()[0].checksum
    await execute(
        migrated_url, "UPDATE schema_migrations SET checksum = $1 WHERE version = 1", checksum
    )
    async with asyncio.timeout(10):
        assert await migrate(migrated_url) == []


# --- two databases on one new server ---------------------------------------------------------


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A server on which the cluster-wide app role does not exist yet."""
    server = EmbeddedPostgres(tmp_path / "pg", fsync="off")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def wait_until_blocked_or_done(
    admin_url: str, database: str, task: asyncio.Task[Any]
) -> None:
    """Poll until the migrator of ``database`` waits on a lock (or finished without waiting)."""
    conn = await asyncpg.connect(admin_url)
    try:
        deadline = time.monotonic() + 10
        while not task.done() and time.monotonic() < deadline:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                "AND application_name = 'riskgate-migrate' AND wait_event_type = 'Lock'",
                database,
            )
            if waiting:
                return
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


@pytest.mark.slow
async def test_first_migrations_of_two_databases_on_one_server_do_not_race(
    new_server: EmbeddedPostgres,
) -> None:
    admin = await asyncpg.connect(new_server.url)
    try:
        for name in ("first", "second"):
            await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    # "first" is a migrator caught mid-transaction: migration 1 ran, not committed yet.
    first = await asyncpg.connect(new_server.url_for("first"))
    try:
        transaction = first.transaction()
        await transaction.start()
        await first.execute(available_migrations()[0].sql)
        second = asyncio.create_task(migrate(new_server.url_for("second")))
        await wait_until_blocked_or_done(new_server.url, "second", second)
        await transaction.commit()
        async with asyncio.timeout(10):
            applied = await second
    finally:
        await first.close()
    assert [m.version for m in applied] == [m.version for m in available_migrations()]

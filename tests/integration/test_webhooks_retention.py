"""Retention of the webhook tables, on real PostgreSQL: what is past its time goes, batch by
batch; recent, pending and dead-letter rows stay; the purge neither waits for writers nor makes
them wait. Each test has a database of its own, so what a purge deletes is exactly what it seeded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from test_migrations import drop_database

from conftest import RunningApp, fresh_database, running_app, settings_with, superuser_url
from riskgate import db
from riskgate.dblogin import create_app_pool
from riskgate.settings import Settings, SettingsError
from riskgate.webhooks import repository
from riskgate.webhooks.retention import DELIVERED, RetentionPolicy, purge
from riskgate.webhooks.schemas import message_id
from webhook_receiver import Receiver
from webhook_support import (
    running_worker,
    score,
    subscribe,
    unique_db,
    wait_delivery,
    webhook_settings,
)

DAY = 86400.0
TABLES = ("outbox", "webhook_deliveries", "webhook_attempts")
ATTEMPTS = 2
BLOCKED_BY = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))"


@pytest.fixture
async def retention_settings(
    postgres_admin_url: str, settings: Settings
) -> AsyncIterator[tuple[Settings, str]]:
    """Webhook settings on a database of the test's own (the documented retention defaults,
    batches of 2) and that database's superuser URL."""
    name = unique_db("retention")
    url = await fresh_database(postgres_admin_url, name)
    # A writer that had to wait for the purge would fail after 2 s instead of hanging.
    yield (
        webhook_settings(settings, url, retention_batch_size=2, db_lock_timeout_ms=2000),
        superuser_url(postgres_admin_url, name),
    )
    await drop_database(postgres_admin_url, name)


@pytest.fixture
async def pool(retention_settings: tuple[Settings, str]) -> AsyncIterator[db.Pool]:
    """The worker's pool: the app login, switched to riskgate_app."""
    pool = await create_app_pool(retention_settings[0], "riskgate-test")
    yield pool
    await pool.close()


@pytest.fixture
async def admin(retention_settings: tuple[Settings, str]) -> AsyncIterator[Any]:
    """A superuser connection that seeds rows with the ages a test needs."""
    conn = await asyncpg.connect(retention_settings[1])
    yield conn
    await conn.close()


@pytest.fixture
def policy(retention_settings: tuple[Settings, str]) -> RetentionPolicy:
    return RetentionPolicy.from_settings(retention_settings[0])


async def outbox_row(
    admin: Any, client_id: uuid.UUID, dispatched_days_ago: float | None, age_days: float = 100
) -> int:
    row_id: int = await admin.fetchval(
        "INSERT INTO outbox (event_type, client_id, aggregate_id, payload, created_at,"
        " dispatched_at) VALUES ('webhook.test', $1, $2, '{}', now() - make_interval(secs => $3),"
        " now() - make_interval(secs => $4)) RETURNING id",
        client_id,
        uuid.uuid4(),
        age_days * DAY,
        None if dispatched_days_ago is None else dispatched_days_ago * DAY,
    )
    return row_id


async def delivery(
    admin: Any,
    client_id: uuid.UUID,
    status: str,
    finished_days_ago: float | None = None,
    subscription_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, int]:
    """A delivery (with its outbox row, dispatched 100 days ago, and two attempts) in
    ``status``, finished that long ago; live ones are due in an hour, out of a worker's way.
    Without a subscription it is a test sent to a bare URL that can never be sent again."""
    outbox_id = await outbox_row(admin, client_id, dispatched_days_ago=100)
    delivery_id = uuid.uuid4()
    await admin.execute(
        """INSERT INTO webhook_deliveries (id, client_id, outbox_id, event_type, aggregate_id,
               status, attempt_count, next_attempt_at, completed_at, subscription_id,
               target_url)
           SELECT $1, client_id, id, event_type, aggregate_id, $3::text, $5,
                  CASE WHEN $3 IN ('pending', 'retrying') THEN now() + interval '1 hour' END,
                  now() - make_interval(secs => $4), $6::uuid,
                  CASE WHEN $6 IS NULL THEN 'https://receiver.invalid/hook' END
           FROM outbox WHERE id = $2""",
        delivery_id,
        outbox_id,
        status,
        None if finished_days_ago is None else finished_days_ago * DAY,
        ATTEMPTS,
        subscription_id,
    )
    await admin.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, outcome)"
        " SELECT $1, n, now(), 5, 'retrying' FROM generate_series(1, $2) AS n",
        delivery_id,
        ATTEMPTS,
    )
    return delivery_id, outbox_id


PRESENT = {
    "deliveries": "SELECT id FROM webhook_deliveries WHERE id = ANY ($1)",
    "attempts": "SELECT DISTINCT delivery_id FROM webhook_attempts WHERE delivery_id = ANY ($1)",
    "outbox": "SELECT id FROM outbox WHERE id = ANY ($1)",
}


async def present(admin: Any, what: str, ids: list[Any]) -> set[Any]:
    """Which of ``ids`` still have rows (deliveries, attempts of deliveries, outbox rows)."""
    return {row[0] for row in await admin.fetch(PRESENT[what], ids)}


def purged_so_far() -> dict[str, float]:
    return {
        table: REGISTRY.get_sample_value("riskgate_retention_purged_rows_total", {"table": table})
        or 0.0
        for table in TABLES
    }


async def test_the_purge_deletes_what_is_past_its_time_and_keeps_the_rest(
    pool: db.Pool, admin: Any, policy: RetentionPolicy
) -> None:
    client = uuid.uuid4()
    gone = [
        await delivery(admin, client, "succeeded", finished_days_ago=31),
        await delivery(admin, client, "failed", finished_days_ago=91),
        await delivery(admin, client, "exhausted", finished_days_ago=91),
    ]
    replayed = await delivery(admin, client, "exhausted", finished_days_ago=91)
    assert await repository.replay_delivery(pool, replayed[0], client)
    kept = [
        replayed,
        await delivery(admin, client, "succeeded", finished_days_ago=29),
        await delivery(admin, client, "exhausted", finished_days_ago=89),  # a dead letter in time
        await delivery(admin, client, "pending"),
        await delivery(admin, client, "retrying"),
        await delivery(admin, client, "held"),
    ]
    lone_outbox_gone = [await outbox_row(admin, client, dispatched_days_ago=8) for _ in range(2)]
    lone_outbox_kept = [
        await outbox_row(admin, client, dispatched_days_ago=6),
        await outbox_row(admin, client, dispatched_days_ago=None),  # undispatched, 100 days old
    ]
    before = purged_so_far()

    purged = await purge(pool, policy)  # batches of 2: several per table

    assert purged == {"webhook_deliveries": 3, "webhook_attempts": 3 * ATTEMPTS, "outbox": 5}
    every_delivery = [d for d, _ in gone + kept]
    assert await present(admin, "deliveries", every_delivery) == {d for d, _ in kept}
    assert await present(admin, "attempts", every_delivery) == {d for d, _ in kept}
    # A kept delivery keeps its outbox row however old: it reads its payload from there.
    every_outbox = [o for _, o in gone + kept] + lone_outbox_gone + lone_outbox_kept
    assert await present(admin, "outbox", every_outbox) == {o for _, o in kept} | set(
        lone_outbox_kept
    )
    after = purged_so_far()
    assert {table: after[table] - before[table] for table in TABLES} == purged
    assert await purge(pool, policy) == {}


async def test_the_purge_skips_a_row_a_writer_holds_instead_of_waiting(
    pool: db.Pool, admin: Any, policy: RetentionPolicy
) -> None:
    client = uuid.uuid4()
    held, _ = await delivery(admin, client, "exhausted", finished_days_ago=91)
    free = [(await delivery(admin, client, "exhausted", finished_days_ago=91))[0] for _ in range(2)]
    async with pool.acquire() as writer:
        replay = writer.transaction()
        await replay.start()
        try:
            # A replay under way holds the row; waiting for it would raise after lock_timeout.
            assert await repository.replay_delivery(writer, held, client)
            purged = await purge(pool, policy)
        finally:
            await replay.rollback()
    assert purged["webhook_deliveries"] == 2
    assert await present(admin, "deliveries", [held, *free]) == {held}
    # The replay never happened: still an old dead letter, taken by the next run.
    assert (await purge(pool, policy))["webhook_deliveries"] == 1


async def write_meanwhile(app: RunningApp, dead_letter: uuid.UUID) -> None:
    """What writers do while a purge is under way: a decision with its outbox row and audit
    entry, the worker's dispatch, claim, attempt and record, and a replay."""
    decision = await score(app.client)
    await wait_delivery(app.client, "succeeded", event_ref=decision["id"])
    replay = await app.client.post(f"/v1/webhooks/deliveries/{message_id(dead_letter)}/replay")
    assert replay.status_code < 300, replay.text


async def test_writers_go_on_while_a_purge_holds_its_locks(
    retention_settings: tuple[Settings, str], pool: db.Pool, admin: Any
) -> None:
    hook_settings, _ = retention_settings
    receiver = await Receiver().start()
    try:
        async with running_app(hook_settings) as app, running_worker(hook_settings):
            subscription = uuid.UUID((await subscribe(app.client, receiver.url))["id"])
            caller = app.caller.id
            due = [await delivery(admin, caller, "succeeded", 31) for _ in range(3)]
            dead_letter, _ = await delivery(admin, caller, "exhausted", 1, subscription)
            async with pool.acquire() as purger, purger.transaction():
                deleted = await repository.purge_deliveries(purger, DELIVERED, 30 * DAY, 10)
                assert deleted == (3, 3 * ATTEMPTS)  # deleted and locked, not yet committed
                await write_meanwhile(app, dead_letter)
                assert await admin.fetchval(BLOCKED_BY, purger.get_server_pid()) == 0
            assert not await present(admin, "deliveries", [d for d, _ in due])
    finally:
        await receiver.close()


async def test_the_worker_purges_on_its_interval(
    retention_settings: tuple[Settings, str], admin: Any
) -> None:
    hook_settings, _ = retention_settings
    old, outbox_id = await delivery(admin, uuid.uuid4(), "succeeded", finished_days_ago=31)
    before = purged_so_far()
    often = settings_with(hook_settings, retention_interval_seconds=0.05)
    async with running_worker(often):
        deadline = time.monotonic() + 10
        while await present(admin, "outbox", [outbox_id]):
            assert time.monotonic() < deadline, "the worker never purged"
            await asyncio.sleep(0.02)
    assert not await present(admin, "deliveries", [old])
    after = purged_so_far()
    assert after["webhook_deliveries"] - before["webhook_deliveries"] >= 1
    assert after["outbox"] - before["outbox"] >= 1


def test_dead_letters_are_kept_at_least_as_long_as_deliveries(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="RISKGATE_WEBHOOK_DEAD_LETTER_RETENTION_DAYS"):
        webhook_settings(
            settings,
            settings.database_url,
            webhook_delivery_retention_days=30,
            webhook_dead_letter_retention_days=7,
        )

"""Least privilege in the database: the API and the worker log in as a role that is only a
member of riskgate_app, can never become the superuser or the schema owner, and refuse to start
as a login that could; migrations log in as the owner through their own URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from test_clients_cli import riskgate

from conftest import (
    TEST_APP_LOGIN,
    TEST_DATABASE,
    TEST_OWNER,
    TEST_PASSWORD,
    RunningApp,
    owner_url,
    running_app,
    settings_with,
)
from riskgate.dblogin import APP_ROLE, PrivilegedLoginError, login_excess
from riskgate.settings import Settings, SettingsError
from riskgate.webhooks.worker import Worker
from riskgate_dev.roles import login_url
from webhook_support import KEYS, score, webhook_settings

APP_SESSION_REFUSALS = [
    pytest.param("SET ROLE {superuser}", id="set-role-superuser"),
    pytest.param(f"SET ROLE {TEST_OWNER}", id="set-role-owner"),
    pytest.param("SET SESSION AUTHORIZATION {superuser}", id="session-authorization"),
]


@pytest.fixture(scope="module")
async def superuser(postgres_admin_url: str) -> str:
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        name: str = await conn.fetchval("SELECT session_user")
    finally:
        await conn.close()
    return name


async def attempt(conn: Any, statement: str) -> asyncpg.PostgresError | None:
    """Run ``statement`` in a savepoint: a refusal leaves the session usable, a success stays."""
    try:
        async with conn.transaction():
            await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        return exc
    return None


@pytest.mark.parametrize("statement", APP_SESSION_REFUSALS)
async def test_an_app_session_cannot_become_the_superuser_or_the_owner(
    app: RunningApp, superuser: str, statement: str
) -> None:
    async with app.runtime.pool.acquire() as conn:
        assert tuple(await conn.fetchrow("SELECT session_user, current_user")) == (
            TEST_APP_LOGIN,
            APP_ROLE,
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(statement.format(superuser=superuser))
        assert await conn.fetchval("SELECT current_user") == APP_ROLE


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE audit_log SET actor = 'mallory'", id="update"),
        pytest.param("DELETE FROM audit_log", id="delete"),
        pytest.param("TRUNCATE audit_log", id="truncate"),
    ],
)
async def test_no_role_an_app_session_tries_lets_it_rewrite_the_audit_log(
    app: RunningApp, client: httpx.AsyncClient, superuser: str, statement: str
) -> None:
    """The attack on a superuser login: become the superuser, switch the triggers off, rewrite.
    Everything runs in a transaction that is rolled back, whatever succeeds."""
    await score(client)
    async with app.runtime.pool.acquire() as conn:
        outer = conn.transaction()
        await outer.start()
        try:
            for role in (superuser, TEST_OWNER):
                if await attempt(conn, f'SET ROLE "{role}"') is None:
                    break
            await attempt(conn, "SET session_replication_role = replica")
            refusal = await attempt(conn, statement)
        finally:
            await outer.rollback()
    assert isinstance(refusal, asyncpg.InsufficientPrivilegeError), refusal
    assert "permission denied for table audit_log" in str(refusal)


async def test_the_app_login_holds_nothing_until_it_switches_to_the_app_role(
    app_database_url: str,
) -> None:
    """NOINHERIT: the pool's SET ROLE is what gives the app its privileges, and all it gets."""
    conn = await asyncpg.connect(app_database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM audit_log")
        assert await login_excess(conn, APP_ROLE) == (TEST_APP_LOGIN, [])
    finally:
        await conn.close()


# --- the start-up check -------------------------------------------------------------------


async def startup_refusal(settings: Settings) -> str:
    """Why the API refused to start (its lifespan's task group wraps the error)."""
    with pytest.raises(ExceptionGroup) as refused:
        async with running_app(settings):
            pytest.fail("the API started")
    errors = refused.value.subgroup(PrivilegedLoginError)
    assert errors is not None, refused.value
    return str(errors.exceptions[0])


async def test_the_api_refuses_to_start_as_a_superuser_login(
    settings: Settings, database_url: str, superuser: str
) -> None:
    refusal = await startup_refusal(settings_with(settings, database_url=database_url))
    assert f'logs in as "{superuser}", which is a superuser' in refusal


async def test_the_worker_refuses_to_start_as_the_schema_owner(
    settings: Settings, postgres_admin_url: str
) -> None:
    # db_role off: the owner is not a member of riskgate_app, so SET ROLE would refuse it first.
    url = owner_url(postgres_admin_url, TEST_DATABASE)
    with pytest.raises(PrivilegedLoginError) as refused:
        await Worker(webhook_settings(settings, url, db_role="")).run()
    message = str(refused.value)
    assert f'logs in as "{TEST_OWNER}"' in message
    for reason in ("has CREATEROLE", "owns the database", "objects of schema public"):
        assert reason in message


@pytest.fixture
async def owner_member(postgres_admin_url: str, database_url: str) -> AsyncIterator[str]:
    """A login that is a member of riskgate_app and, through a group, of the schema owner."""
    name, group = f"riskgate_test_{uuid.uuid4().hex[:8]}", f"riskgate_test_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f"CREATE ROLE {group} NOLOGIN IN ROLE {TEST_OWNER}")
        await admin.execute(
            f"CREATE ROLE {name} LOGIN PASSWORD '{TEST_PASSWORD}' IN ROLE {APP_ROLE}, {group}"
        )
        yield login_url(postgres_admin_url, name, TEST_PASSWORD, TEST_DATABASE)
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.execute(f"DROP ROLE IF EXISTS {group}")
        await admin.close()


async def test_a_login_that_can_reach_the_owner_through_a_group_is_refused(
    settings: Settings, owner_member: str
) -> None:
    refusal = await startup_refusal(settings_with(settings, database_url=owner_member))
    assert f"is a member of {TEST_OWNER} (owner of the schema)" in refusal


async def test_dev_mode_may_allow_a_privileged_login_explicitly(
    settings: Settings, database_url: str
) -> None:
    allowed = settings_with(settings, database_url=database_url, db_allow_privileged_login=True)
    async with running_app(allowed) as app:
        assert (await app.client.get("/v1/health/ready")).status_code == 200
    with pytest.raises(SettingsError, match="RISKGATE_DB_ALLOW_PRIVILEGED_LOGIN"):
        settings_with(allowed, mode="production")


# --- the commands -------------------------------------------------------------------------


def command_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    return {**env, "NO_COLOR": "1", **{f"RISKGATE_{k.upper()}": v for k, v in variables.items()}}


async def test_the_worker_command_refuses_a_superuser_login_in_one_line(
    settings: Settings, database_url: str, signing_key_file: Path
) -> None:
    env = command_env(
        database_url=database_url,
        redis_url=settings.redis_url,
        jwt_signing_key_file=str(signing_key_file),
        webhook_encryption_keys=KEYS,
    )
    run = await riskgate(env, "worker")
    assert run.code == 2, run
    assert "is a superuser" in run.err
    assert "Traceback" not in run.err


async def test_migrate_needs_the_owner_url_and_never_uses_the_apps(
    app_database_url: str,
) -> None:
    unset = await riskgate(command_env(database_url=app_database_url), "migrate")
    assert unset.code == 2, unset
    assert "RISKGATE_MIGRATION_DATABASE_URL is required" in unset.err
    as_app = await riskgate(command_env(migration_database_url=app_database_url), "migrate")
    assert as_app.code == 2, as_app
    assert "must log in as the schema owner" in as_app.err


async def test_migrate_and_audit_verify_run_as_their_own_logins(
    postgres_admin_url: str, app_database_url: str
) -> None:
    owner = owner_url(postgres_admin_url, TEST_DATABASE)
    migrated = await riskgate(command_env(migration_database_url=owner), "migrate")
    assert (migrated.code, migrated.out.strip()) == (0, "applied 0 migration(s)"), migrated
    verified = await riskgate(command_env(database_url=app_database_url), "audit", "verify")
    assert verified.code == 0, verified
    assert "audit chain intact" in verified.out

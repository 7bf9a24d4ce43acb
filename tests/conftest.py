"""Shared fixtures: real PostgreSQL and Redis, a migrated database per test worker, the app.

Servers come from ``RISKGATE_TEST_DATABASE_URL`` / ``RISKGATE_TEST_REDIS_URL`` when set (CI
with service containers), otherwise the fixtures start embedded ones from Python packages.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from riskgate.app import create_litestar
from riskgate.auth.repository import ClientRecord, client_by_name
from riskgate.auth.scopes import SCOPES
from riskgate.auth.service import ClientAdmin, IssuedCredentials
from riskgate.auth.signing import generate_private_key_pem
from riskgate.dblogin import APP_ROLE
from riskgate.migrate import migrate
from riskgate.observability.middleware import ObservabilityMiddleware
from riskgate.runtime import Runtime
from riskgate.settings import Settings
from riskgate_dev.embedded import EmbeddedPostgres, EmbeddedRedis
from riskgate_dev.roles import login_url, provision_database, with_database

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    """Server data lives outside pytest's basetemp: pytest prunes and re-permissions that tree,
    which another concurrent pytest run could do under a live PostgreSQL."""
    root = Path(tempfile.mkdtemp(prefix="riskgate-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url(data_root: Path) -> Iterator[str]:
    """A superuser URL of a PostgreSQL server (embedded unless one is given)."""
    given = os.environ.get("RISKGATE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    # fsync off: these databases are thrown away, and it keeps the suite fast.
    with EmbeddedPostgres(data_root / "postgres", fsync="off", max_connections="300") as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_url(data_root: Path) -> Iterator[str]:
    given = os.environ.get("RISKGATE_TEST_REDIS_URL")
    if given:
        yield given
        return
    with EmbeddedRedis(data_root / "redis") as server:
        yield server.url


# The roles of the README's "Database roles", as `riskgate dev` makes them (their own names:
# RISKGATE_TEST_DATABASE_URL may point at a server that hosts more than these tests).
TEST_OWNER = "riskgate_test_owner"
TEST_APP_LOGIN = "riskgate_test_api"
TEST_PASSWORD = "riskgate-test"  # throwaway test roles
TEST_DATABASE = f"riskgate_test_{WORKER}"


def superuser_url(admin_url: str, database: str) -> str:
    """The superuser's URL of ``database``, for checking or tampering with what was written."""
    return with_database(admin_url, database)


def owner_url(admin_url: str, database: str) -> str:
    """The schema owner's URL of ``database`` (what ``riskgate migrate`` logs in as)."""
    return login_url(admin_url, TEST_OWNER, TEST_PASSWORD, database)


async def fresh_database(admin_url: str, name: str) -> str:
    """Drop and recreate ``name`` owned by the test schema owner, apply the migrations as that
    owner, and return the app's URL: its login is only a member of riskgate_app."""
    logins = await provision_database(
        admin_url,
        name,
        owner=TEST_OWNER,
        app_login=TEST_APP_LOGIN,
        password=TEST_PASSWORD,
        recreate=True,
    )
    await migrate(logins.owner_url)
    return logins.app_url


async def connect_as_app(url: str) -> asyncpg.Connection[Any]:
    """A session like the app's own on ``url``: its login, switched to riskgate_app."""
    return await asyncpg.connect(url, server_settings={"role": APP_ROLE})


@pytest.fixture(scope="session")
async def app_database_url(postgres_admin_url: str) -> str:
    """A database built by the migrations, one per test worker, as the app logs in to it."""
    return await fresh_database(postgres_admin_url, TEST_DATABASE)


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str, app_database_url: str) -> str:
    """The same database, as the superuser."""
    return superuser_url(postgres_admin_url, TEST_DATABASE)


@pytest.fixture(scope="session")
def signing_key_file(data_root: Path) -> Path:
    path = data_root / "jwt-signing.pem"
    path.write_bytes(generate_private_key_pem())
    return path


@pytest.fixture(scope="session")
def settings(app_database_url: str, redis_url: str, signing_key_file: Path) -> Settings:
    return Settings.from_env(
        {},
        database_url=app_database_url,
        redis_url=redis_url,
        mode="dev",
        jwt_signing_key_file=str(signing_key_file),
        # Tests disable clients and expect the very next request to see it.
        auth_cache_seconds=0,
        # The suite's own clients send far more than a real one (and many wrong secrets, all
        # from one address); rate-limit tests give their clients and apps their own policies.
        rate_limit="1000000/60s",
        failed_auth_per_client="1000000/60s",
        failed_auth_per_address="1000000/60s",
    )


def settings_with(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with some fields changed (validated like the original)."""
    fields = {name: getattr(settings, name) for name in settings.__struct_fields__}
    return Settings.from_env({}, **{**fields, **changes})


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A superuser connection for checking what was (or was not) written."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


class RunningApp:
    """The real app with its real lifespan, a client registered in its database with every
    scope, and an HTTP client that authenticates as that client with its API key."""

    def __init__(
        self,
        litestar: Litestar,
        caller: ClientRecord,
        credentials: IssuedCredentials,
        loop_died: asyncio.Event,
    ):
        self.litestar = litestar
        self.loop_died = loop_died
        """Set when a background task died (a real server would shut down then)."""
        self.caller = caller
        self.credentials = credentials
        self.asgi = ObservabilityMiddleware(litestar)
        self.client = self.http_client({"X-API-Key": credentials.api_key})
        self.anonymous = self.http_client({})

    def http_client(self, headers: dict[str, str], address: str = "127.0.0.1") -> httpx.AsyncClient:
        """A client of the app; ``address`` is the source address the app sees."""
        transport = httpx.ASGITransport(app=self.asgi, client=(address, 50000))  # type: ignore[arg-type]
        return httpx.AsyncClient(
            transport=transport,
            base_url="http://riskgate.test",
            headers=headers,
        )

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.litestar.state.runtime
        return runtime

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.anonymous.aclose()


async def register_client(
    runtime: Runtime, scopes: str = " ".join(SCOPES), **options: Any
) -> tuple[ClientRecord, IssuedCredentials]:
    """A new client with a unique name in the app's database."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    issued = await ClientAdmin(runtime.pool).create(name, scopes, **options)
    record = await client_by_name(runtime.pool, name)
    assert record is not None
    return record, issued


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """Start the app's lifespan in a task of its own and stop it from that same task.

    Litestar's lifespan holds an anyio task group, which must be exited by the task that
    entered it; pytest runs fixture setup and teardown in different tasks.
    """
    loop_died = asyncio.Event()
    litestar = create_litestar(settings, on_loop_death=loop_died.set)
    started, stop = asyncio.Event(), asyncio.Event()

    async def host() -> None:
        async with litestar.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(host())
    await asyncio.wait(
        {task, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED
    )
    if task.done():
        task.result()  # startup failed: raise its error here
    running = RunningApp(litestar, *await register_client(litestar.state.runtime), loop_died)
    try:
        yield running
    finally:
        await running.aclose()
        stop.set()
        await task


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(settings) as running:
        yield running


@pytest.fixture
def client(app: RunningApp) -> httpx.AsyncClient:
    return app.client


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    """A Redis of the test's own, free to be killed (the shared one is not)."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def app_on_own_redis(
    settings: Settings, own_redis: EmbeddedRedis
) -> AsyncIterator[RunningApp]:
    """The app on ``own_redis``, retrying Redis soon after an outage."""
    tuned = settings_with(settings, redis_url=own_redis.url, redis_retry_after_seconds=0.2)
    async with running_app(tuned) as running:
        yield running


async def client_audit(db: asyncpg.Connection[Any], name: str) -> list[tuple[str, Any]]:
    """(action, details) of every audit row about client ``name``, oldest first."""
    rows = await db.fetch(
        "SELECT a.action, a.details FROM audit_log a JOIN clients c ON a.entity_id = c.id::text "
        "WHERE a.entity_type = 'client' AND c.name = $1 ORDER BY a.id",
        name,
    )
    return [(row["action"], json.loads(row["details"])) for row in rows]


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex}"

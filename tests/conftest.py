"""Shared fixtures: real PostgreSQL and Redis, a migrated database per test worker, the app.

Servers come from ``RISKGATE_TEST_DATABASE_URL`` / ``RISKGATE_TEST_REDIS_URL`` when set (CI
with service containers), otherwise the fixtures start embedded ones from Python packages.
"""

from __future__ import annotations

import asyncio
import os
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
from riskgate.embedded import EmbeddedPostgres, EmbeddedRedis
from riskgate.migrate import migrate
from riskgate.observability.middleware import ObservabilityMiddleware
from riskgate.settings import Settings

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


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


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def fresh_database(admin_url: str, name: str) -> str:
    """Drop and recreate ``name``, apply the migrations, and return its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(admin_url, name)
    await migrate(url)
    return url


@pytest.fixture(scope="session")
async def database_url(postgres_admin_url: str) -> str:
    """A database built by the migrations, one per test worker."""
    return await fresh_database(postgres_admin_url, f"riskgate_test_{WORKER}")


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    return Settings.from_env({}, database_url=database_url, redis_url=redis_url, mode="dev")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A superuser connection for checking what was (or was not) written."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


class RunningApp:
    """The real app with its real lifespan, and an HTTP client that talks to it."""

    def __init__(self, litestar: Litestar) -> None:
        self.litestar = litestar
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=ObservabilityMiddleware(litestar)),
            base_url="http://riskgate.test",
        )


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """Start the app's lifespan in a task of its own and stop it from that same task.

    Litestar's lifespan holds an anyio task group, which must be exited by the task that
    entered it; pytest runs fixture setup and teardown in different tasks.
    """
    litestar = create_litestar(settings)
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
    running = RunningApp(litestar)
    try:
        yield running
    finally:
        await running.client.aclose()
        stop.set()
        await task


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(settings) as running:
        yield running


@pytest.fixture
def client(app: RunningApp) -> httpx.AsyncClient:
    return app.client


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


def new_event_id() -> str:
    return f"ev-{uuid.uuid4().hex}"

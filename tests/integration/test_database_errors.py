"""Every way of losing the database is a retryable 503, and a lost session is never reused.

``test_database_restart`` shows it end to end with a real server going away; the races there
(which error a dying session gives depends on what the event loop has read of it) are pinned
down here one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar, get

from conftest import running_app, settings_with
from riskgate.health.routes import probe
from riskgate.http.problems import exception_handlers
from riskgate.settings import Settings

# What asyncpg raises on a session the server ended, a socket that broke, or a protocol it lost
# track of; each message is one seen from a real outage.
LOST: list[Exception] = [
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.exceptions.ProtocolError("unexpected message"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError("idle-in-transaction timeout"),
    asyncpg.exceptions.IdleSessionTimeoutError("terminating connection due to idle timeout"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.DiskFullError("could not extend file"),
]


def app_raising(error: Exception) -> Litestar:
    @get("/boom", opt={"public": True})
    async def boom() -> None:
        raise error

    return Litestar(route_handlers=[boom], exception_handlers=exception_handlers())  # type: ignore[arg-type]


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
async def test_every_lost_database_error_is_a_503_dependency_unavailable(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app_raising(error))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://riskgate.test") as client:
        response = await client.get("/boom")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "https://riskgate.io/problems/dependency-unavailable"
    assert str(error) not in response.text
    assert not [r for r in caplog.records if r.exc_info], "an outage is not a bug: no traceback"


def raising(error: Exception) -> Callable[[], Awaitable[object]]:
    async def check() -> object:
        raise error

    return check


@pytest.mark.parametrize(
    "error", [*LOST, TimeoutError(), RuntimeError("a bug")], ids=lambda e: type(e).__name__
)
async def test_a_readiness_check_that_fails_in_any_way_means_down_never_a_500(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    assert await probe("postgres", raising(error)) is False
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == (1 if isinstance(error, RuntimeError) else 0)


class LaggingRelay:
    """A TCP relay in front of PostgreSQL that forwards every byte at once but holds back the
    server's end of a connection until ``release()``: the moment, normally short, between a
    session's last message (the server's FATAL) and its EOF, made as long as a test needs."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._upstream = parts
        self._eof_allowed = asyncio.Event()
        self.eof_held = asyncio.Event()
        """Set once a server connection has ended: everything it sent has been forwarded."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        netloc = f"{self._upstream.username}@127.0.0.1:{port}"
        return self._upstream._replace(netloc=netloc).geturl()

    def release(self) -> None:
        self._eof_allowed.set()

    async def close(self) -> None:
        self.release()
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        for task in (
            asyncio.create_task(self._pump(client_r, server_w, hold_eof=False)),
            asyncio.create_task(self._pump(server_r, client_w, hold_eof=True)),
        ):
            self._tasks.add(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold_eof: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            if hold_eof:
                self.eof_held.set()
                await self._eof_allowed.wait()
        except OSError:
            pass
        finally:
            writer.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first", ["/v1/events", "/v1/health/ready"])
async def test_a_session_the_server_ended_while_idle_is_one_503_then_a_fresh_one_serves(
    settings: Settings, first: str
) -> None:
    """The server ends the pool's idle session (a restart, an admin's pg_terminate_backend);
    its FATAL is read, its EOF not yet. The next query gets asyncpg's InternalClientError; the
    request (or the readiness probe) that made it is a 503, the next one is served as usual."""
    relay = LaggingRelay(settings.database_url)
    lagging = settings_with(
        settings, database_url=await relay.start(), db_pool_min_size=1, db_pool_max_size=1
    )
    admin = await asyncpg.connect(settings.database_url)
    try:
        async with running_app(lagging) as app:
            pid = await app.runtime.pool.fetchval("SELECT pg_backend_pid()")
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.wait_for(relay.eof_held.wait(), 10)
            await asyncio.sleep(0.05)  # a few loop turns: asyncpg reads the forwarded FATAL

            lost = await app.client.get(first)
            assert lost.status_code == 503, lost.text
            assert await app.runtime.pool.fetchval("SELECT pg_backend_pid()") != pid
            assert (await app.client.get(first)).status_code == 200
            relay.release()  # closing the app's pool waits for the EOF
    finally:
        await admin.close()
        await relay.close()

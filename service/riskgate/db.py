"""PostgreSQL access: the connection pool and named SQL queries.

Repositories receive the pool or a connection and never commit. Each write is one statement,
atomic on its own (its data-modifying CTEs commit together), so a request never holds a
transaction open across round trips.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
import msgspec

from riskgate.settings import DatabaseSettings

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

_QUERY_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

# Errors that mean "the database cannot serve this right now", as opposed to a bad query: the
# session is gone or unusable (the server ended it, the socket broke, or asyncpg lost track of
# the protocol: its InternalClientError "cannot switch to state ...; another operation is in
# progress" is what a session the server ended while it sat idle in the pool gives on its next
# use), or the server is shutting down, out of resources or timed the statement out. The API
# answers them with 503 and Retry-After; background loops wait them out. asyncpg itself never
# lends out such a session again (the regression tests pin that down).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,  # 08xxx
    asyncpg.InterfaceError,
    # What asyncpg raises ("cannot switch to state N; another operation is in progress") when
    # the server shuts down while a statement is being sent on that connection.
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,  # 57xxx: shutdowns, crashes, cancelled statements
    asyncpg.InsufficientResourcesError,  # 53xxx: too many connections, disk full, out of memory
    asyncpg.PostgresSystemError,  # 58xxx: I/O error on the server
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.LockNotAvailableError,
)


def load_queries(package: str, filename: str = "queries.sql") -> Mapping[str, str]:
    """Read a ``.sql`` file of ``-- name: <query>`` sections, once, at import time."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _QUERY_HEADER.split(text)
    queries = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    if not queries:
        raise ValueError(f"{package}/{filename} defines no '-- name:' queries")
    return queries


def _encode_json(value: Any) -> str:
    if isinstance(value, bytes):  # already-encoded JSON, e.g. a stored response
        return value.decode()
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode
        )


async def _keep_session(conn: Connection) -> None:
    """Skip asyncpg's per-release reset query (``RESET ALL``, ``UNLISTEN *``...): our sessions
    never change session state, and the query is a round trip on every request. asyncpg still
    rolls back a transaction left open by a cancelled request before this runs."""


def server_settings(settings: DatabaseSettings, application_name: str) -> dict[str, str]:
    """Per-session settings: bounded waits, and the least-privileged role for app traffic."""
    values = {
        "application_name": application_name,
        "lock_timeout": str(settings.db_lock_timeout_ms),
        "statement_timeout": str(settings.db_statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.db_statement_timeout_ms * 2),
    }
    if settings.db_role:
        values["role"] = settings.db_role
    return values


async def create_pool(
    settings: DatabaseSettings,
    application_name: str = "riskgate-api",
    *,
    min_size: int | None = None,
    max_size: int | None = None,
) -> Pool:
    pool: Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size if min_size is None else min_size,
        max_size=settings.db_pool_max_size if max_size is None else max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=server_settings(settings, application_name),
        # Prepared statements are cached per connection; ours are few and fixed.
        statement_cache_size=256,
    )
    return pool

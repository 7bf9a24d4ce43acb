"""The database roles of the README's "Database roles", made from a superuser connection.

``riskgate dev`` and the test fixtures set a database up exactly as a DBA would: a schema owner
that runs the migrations, the NOLOGIN ``riskgate_app`` role the migrations grant to, and the
login of the API and the worker, which is only a member of ``riskgate_app``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from riskgate.db import Connection, load_queries
from riskgate.dblogin import APP_ROLE

_Q = load_queries("riskgate_dev", "roles.sql")
OWNER = "riskgate_owner"
APP_LOGIN = "riskgate_api"
# Roles are cluster-wide and several databases (or test runs) may set up at once.
_PROVISION_LOCK = 0x7267726F6C6573  # "rgroles"


@dataclass(frozen=True, slots=True)
class DatabaseLogins:
    owner_url: str
    """RISKGATE_MIGRATION_DATABASE_URL: the schema owner."""
    app_url: str
    """RISKGATE_DATABASE_URL: the API's and the worker's login."""


def login_url(url: str, user: str, password: str | None, database: str) -> str:
    """``url`` with another user, password and database (host, port and options kept)."""
    parts = urlsplit(url)
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}", path=f"/{database}"))


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database, same login."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def _run(conn: Connection, name: str, *values: str | None) -> None:
    statement = await conn.fetchval("SELECT format($1, VARIADIC $2::text[])", _Q[name], values)
    await conn.execute(statement)


async def _ensure_role(conn: Connection, role: str, attributes: str, *values: str | None) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role):
        # A migration elsewhere may create riskgate_app meanwhile.
        with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await _run(conn, "create_role", role)
    await _run(conn, attributes, role, *values)


async def provision_database(
    admin_url: str,
    database: str,
    *,
    owner: str = OWNER,
    app_login: str = APP_LOGIN,
    password: str | None = None,
    recreate: bool = False,
) -> DatabaseLogins:
    """Create (or bring in line) the three roles and ``database`` owned by ``owner``.

    ``recreate`` drops the database first. Returns the owner's and the app login's URLs.
    """
    conn: Connection = await asyncpg.connect(admin_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PROVISION_LOCK)
            await _ensure_role(conn, owner, "owner_attributes", password)
            await _ensure_role(conn, APP_ROLE, "app_role_attributes")
            await _ensure_role(conn, app_login, "app_login_attributes", password)
            await _run(conn, "grant_app_role", APP_ROLE, app_login)
        if recreate:
            await _run(conn, "drop_database", database)
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", database
        )
        await _run(conn, "database_owner" if exists else "create_database", database, owner)
    finally:
        await conn.close()
    superuser = await asyncpg.connect(with_database(admin_url, database))
    try:
        await superuser.execute(_Q["revoke_public_create"])
    finally:
        await superuser.close()
    return DatabaseLogins(
        owner_url=login_url(admin_url, owner, password, database),
        app_url=login_url(admin_url, app_login, password, database),
    )

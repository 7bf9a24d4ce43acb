"""The API's and the worker's database login must be nothing but a way into the app role.

The app role's grants are what keep the audit log append-only and the schema out of the app's
reach. A login that could also become a superuser or the schema owner undoes all of it with one
``SET ROLE``, so the API and the worker check their login when they start and refuse to run as
one (dev mode may allow it explicitly with ``RISKGATE_DB_ALLOW_PRIVILEGED_LOGIN``).
"""

from __future__ import annotations

from riskgate import db
from riskgate.settings import Settings

_Q = db.load_queries("riskgate", "dblogin.sql")
APP_ROLE = "riskgate_app"


class PrivilegedLoginError(Exception):
    """``RISKGATE_DATABASE_URL`` logs in as a role that can do more than the app role."""


async def login_excess(conn: db.Pool | db.Connection, app_role: str) -> tuple[str, list[str]]:
    """The session's login and what it can do beyond ``app_role`` (empty: nothing)."""
    row = await conn.fetchrow(_Q["login_excess"], app_role)
    assert row is not None
    return row["login"], list(row["reasons"] or [])


async def check_login(conn: db.Pool | db.Connection, settings: Settings) -> None:
    """Raise :class:`PrivilegedLoginError` unless the login is only a member of the app role."""
    if settings.db_allow_privileged_login:
        return
    app_role = settings.db_role or APP_ROLE
    login, reasons = await login_excess(conn, app_role)
    if reasons:
        raise PrivilegedLoginError(
            f'RISKGATE_DATABASE_URL logs in as "{login}", which {"; ".join(reasons)}. The API '
            f"and the worker must log in as a role that is only a member of {app_role} (see "
            '"Database roles" in the README); RISKGATE_DB_ALLOW_PRIVILEGED_LOGIN=true allows it '
            "in dev mode."
        )


async def create_app_pool(
    settings: Settings,
    application_name: str,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
) -> db.Pool:
    """The API's or the worker's pool, once its login has passed :func:`check_login`."""
    pool = await db.create_pool(settings, application_name, min_size=min_size, max_size=max_size)
    try:
        await check_login(pool, settings)
    except BaseException:
        await pool.close()
        raise
    return pool

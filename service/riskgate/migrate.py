"""SQL migrations: numbered ``.sql`` files in ``riskgate/migrations``, applied in order.

Safe to run from several processes at once (a Helm hook Job racing an operator's rollout, or
two ``riskgate migrate`` invocations): a session-level advisory lock serialises runners and the
second one finds nothing left to do. Each file runs in its own transaction, and a file whose
text changed after it was applied stops the run instead of silently diverging.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

logger = logging.getLogger(__name__)

# Arbitrary but fixed: every riskgate migrator agrees on it.
MIGRATION_LOCK_ID = 0x7269736B67617465  # "riskgate"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database's migration history does not match the files shipped with this build."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Every migration file of this build, in version order."""
    found = []
    for entry in resources.files("riskgate.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


async def migrate(dsn: str) -> list[Migration]:
    """Apply pending migrations; returns those applied by this call."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "riskgate-migrate"})
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            return await _apply_pending(conn, available_migrations())
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()


async def _apply_pending(
    conn: asyncpg.Connection[asyncpg.Record], migrations: list[Migration]
) -> list[Migration]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    integer PRIMARY KEY,
               name       text NOT NULL,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    _check_history(applied, migrations)
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        logger.info(
            "applied migration", extra={"version": migration.version, "migration": migration.name}
        )
        done.append(migration)
    return done


def _check_history(applied: dict[int, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"database has migration {version}, which this build does not know: "
                "it was migrated by a newer riskgate; deploy that version or newer"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version}_{migration.name} changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )

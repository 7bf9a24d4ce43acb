"""``riskgate dev``: a complete local stack from Python packages alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import click

from riskgate import db
from riskgate.accounts.repository import open_demo_account
from riskgate.auth.repository import client_by_name
from riskgate.auth.scopes import ADMIN_SCOPE, SCOPES
from riskgate.auth.service import ClientAdmin, ClientExists
from riskgate.auth.signing import generate_private_key_pem
from riskgate.migrate import Migration, migrate
from riskgate.settings import DatabaseSettings, Settings
from riskgate_dev.embedded import EmbeddedPostgres, EmbeddedRedis
from riskgate_dev.roles import provision_database

DATABASE = "riskgate"
DEMO_CLIENT = "demo-app"
DEMO_ACCOUNT_BALANCE_MINOR = 100_000_00  # 100,000.00 GBP
DEMO_SECRET = "demo-secret"  # noqa: S105 (dev mode only; never created outside `riskgate dev`)


def _kept_secret(path: Path, make: Callable[[], bytes]) -> Path:
    """A secret file made once (mode 0600) and kept, so a restart reuses it: tokens stay valid
    and stored webhook secrets stay readable."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(make())
    return path


def _signing_key(data_dir: Path) -> Path:
    return _kept_secret(data_dir / "keys" / "jwt-signing.pem", generate_private_key_pem)


def _webhook_key_ring(data_dir: Path) -> Path:
    from riskgate.webhooks.crypto import generate_key_entry

    return _kept_secret(
        data_dir / "keys" / "webhook-encryption.keys",
        lambda: (generate_key_entry("dev-1") + "\n").encode(),
    )


@contextlib.contextmanager
def _webhook_worker() -> Iterator[None]:
    """``riskgate worker`` beside the API, with this process's environment."""
    worker = subprocess.Popen([sys.executable, "-m", "riskgate", "worker"])
    try:
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


async def _ensure_demo_data(owner_url: str) -> str | None:
    """demo-app with every scope but the client admin API's, and its account 1 with 100,000.00 GBP.

    The admin scope lets a client mint others; a demo credential printed on the console should
    not carry it (``riskgate clients create --scopes clients:admin`` makes one to try the API).

    Returns the demo client's API key the first time (it is shown once), else None.
    """
    # Bootstrap logs in as the schema owner (db_role=""), like `riskgate migrate`: placing
    # account 1 moves the id sequence, which the app's own role is rightly not allowed to do.
    owner = DatabaseSettings(database_url=owner_url, db_role="")
    pool = await db.create_pool(owner, "riskgate-dev", min_size=1, max_size=1)
    try:
        try:
            issued = await ClientAdmin(pool, actor="operator:dev").create(
                DEMO_CLIENT, " ".join(s for s in SCOPES if s != ADMIN_SCOPE), secret=DEMO_SECRET
            )
        except ClientExists:
            return None
        demo = await client_by_name(pool, DEMO_CLIENT)
        assert demo is not None
        await open_demo_account(pool, demo.id, DEMO_ACCOUNT_BALANCE_MINOR, "operator:dev")
        return issued.api_key
    finally:
        await pool.close()


def _migrate(owner_url: str, data_dir: Path) -> list[Migration]:
    try:
        return asyncio.run(migrate(owner_url))
    except asyncpg.InsufficientPrivilegeError as exc:
        # Before the owner role existed, dev databases belonged to the superuser.
        raise click.ClickException(
            f"{data_dir} holds a database the schema owner cannot migrate ({exc}); it was made "
            "by an older riskgate dev: delete the directory to start from scratch"
        ) from None


def _banner(base: str, data_dir: Path, api_key: str | None) -> str:
    key_line = (
        f"  API key    {api_key}   (shown once; use it as X-API-Key instead of a token)\n"
        if api_key
        else ""
    )
    return f"""
riskgate dev is up
  API        {base}   (OpenAPI UI: {base}/schema, spec: {base}/schema/openapi.json)
  metrics    {base}/metrics
  data       {data_dir}  (PostgreSQL, Redis, signing key; delete it to start from scratch)
  client     {DEMO_CLIENT} / {DEMO_SECRET}, every scope but clients:admin
  account    1, holding 100,000.00 GBP
{key_line}
Get a token, then score an event:
  TOKEN=$(curl -sS -X POST {base}/oauth2/token \\
    -d 'grant_type=client_credentials&client_id={DEMO_CLIENT}&client_secret={DEMO_SECRET}' \\
    -d 'scope=score:write events:read webhooks:write' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

  curl -sS -X POST {base}/v1/score \\
    -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' \\
    -H "Idempotency-Key: $(uuidgen 2>/dev/null || date +%s%N)" \\
    -d '{{"event_id": "bk-1001", "source": "flight",
         "signals": {{"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0}}}}'

Ctrl-C stops the API and both servers.
"""


def run_dev(
    *, host: str, port: int, workers: int, data_dir: Path, serve: Callable[[Settings], None]
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres = EmbeddedPostgres(data_dir / "postgres")
    redis = EmbeddedRedis(data_dir / "redis")
    click.echo(f"starting PostgreSQL and Redis under {data_dir} ...")
    with postgres, redis:
        # The roles a DBA would create: the API and the worker never log in as the superuser.
        logins = asyncio.run(provision_database(postgres.url, DATABASE))
        applied = _migrate(logins.owner_url, data_dir)
        click.echo(f"migrations: {len(applied)} applied, schema up to date")
        api_key = asyncio.run(_ensure_demo_data(logins.owner_url))
        env = {
            "RISKGATE_DATABASE_URL": logins.app_url,
            "RISKGATE_MIGRATION_DATABASE_URL": logins.owner_url,
            "RISKGATE_JWT_SIGNING_KEY_FILE": str(_signing_key(data_dir)),
            "RISKGATE_REDIS_URL": redis.url,
            "RISKGATE_MODE": "dev",
            "RISKGATE_HOST": host,
            "RISKGATE_PORT": str(port),
            "RISKGATE_WORKERS": str(workers),
            # --- webhooks: loopback receivers are fine on a laptop; the worker's health port
            "RISKGATE_WEBHOOK_ENCRYPTION_KEYS_FILE": str(_webhook_key_ring(data_dir)),
            "RISKGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "RISKGATE_WORKER_PORT": str(port + 1),
        }
        os.environ.update(env)
        settings = Settings.from_env()
        click.echo(_banner(f"http://{host}:{port}", data_dir, api_key))
        click.echo(f"  webhook worker   http://{host}:{port + 1}/v1/health/ready (and /metrics)\n")
        with _webhook_worker():
            serve(settings)

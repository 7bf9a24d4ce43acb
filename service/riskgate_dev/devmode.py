"""``riskgate dev``: a complete local stack from Python packages alone."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
LOCK_FILE = "dev.lock"
ENV_FILE = "dev-env.json"
API_KEY_FILE = "keys/demo-api-key"
# What `riskgate dev env` exports: enough for every command in the README (the admin commands,
# `riskgate migrate`, `riskgate keys rotate`) to reach this stack.
EXPORTED = (
    "RISKGATE_DATABASE_URL",
    "RISKGATE_MIGRATION_DATABASE_URL",
    "RISKGATE_REDIS_URL",
    "RISKGATE_JWT_SIGNING_KEY_FILE",
    "RISKGATE_WEBHOOK_ENCRYPTION_KEYS_FILE",
    "RISKGATE_MODE",
)
WORKER_RESTARTS = 3
"""Restarts of a dying worker allowed within WORKER_RESTART_WINDOW; past them dev stops."""
WORKER_RESTART_WINDOW = 60.0


class DevError(click.ClickException):
    """A clear one-line refusal, before anything is started."""


class DataDirLock:
    """An exclusive lock on the data directory, held for the life of ``riskgate dev``.

    Two stacks on one directory would run two postgres servers over the same files. flock is
    released by the kernel when the process dies, so a crashed run never leaves it stale.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DevError(f"another riskgate dev (pid {holder}) uses {self.path.parent}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def held_by_another(self) -> bool:
        """Whether a running ``riskgate dev`` holds the lock (for ``riskgate dev env``)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def check_port_free(host: str, port: int, what: str) -> None:
    """Refuse to start when ``port`` is taken, rather than starting the databases first and
    failing in uvicorn afterwards."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: a port in TIME_WAIT is free, one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DevError(
                    f"port {port} is in use ({what}); pick another with --port"
                ) from None
            raise DevError(f"cannot bind {host}:{port} ({what}): {exc.strerror}") from None


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


class WorkerSupervisor:
    """``riskgate worker`` beside the API, restarted when it dies.

    A worker that keeps dying (more than WORKER_RESTARTS times in WORKER_RESTART_WINDOW) is
    not restarted again: the supervisor says so and stops ``riskgate dev`` (SIGINT to itself,
    as Ctrl-C would: uvicorn shuts down cleanly, then re-raises it as KeyboardInterrupt), which
    then exits non-zero.
    """

    def __init__(self) -> None:
        self.gave_up: str | None = None
        self._stopping = threading.Event()
        self._process = self._spawn()
        self._deaths: list[float] = []
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()

    @staticmethod
    def _spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "riskgate", "worker"])

    def _watch(self) -> None:
        while True:
            code = self._process.wait()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            self._deaths = [t for t in self._deaths if now - t < WORKER_RESTART_WINDOW] + [now]
            if len(self._deaths) > WORKER_RESTARTS:
                self.gave_up = (
                    f"the webhook worker exited {len(self._deaths)} times in "
                    f"{WORKER_RESTART_WINDOW:.0f} s (last exit code {code}); stopping riskgate dev"
                )
                click.secho(f"riskgate dev: {self.gave_up}", fg="red", err=True)
                os.kill(os.getpid(), signal.SIGINT)
                return
            click.secho(
                f"riskgate dev: the webhook worker exited with code {code}; restarting it "
                f"({len(self._deaths)}/{WORKER_RESTARTS})",
                fg="yellow",
                err=True,
            )
            # Bounded by the restart budget above, so a crash loop cannot spin.
            self._stopping.wait(min(2.0 ** (len(self._deaths) - 1), 5.0))
            if self._stopping.is_set():
                return
            self._process = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def _webhook_worker() -> Iterator[WorkerSupervisor]:
    supervisor = WorkerSupervisor()
    try:
        yield supervisor
    finally:
        supervisor.stop()


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


def _banner(base: str, data_dir: Path, api_key: str | None, env: Mapping[str, str]) -> str:
    key_line = (
        f"  API key    {api_key}   (use it as X-API-Key instead of a token)\n" if api_key else ""
    )
    settings = "".join(f"  {name}={env[name]}\n" for name in EXPORTED[:3])
    return f"""
riskgate dev is up
  API        {base}   (OpenAPI UI: {base}/schema, spec: {base}/schema/openapi.json)
  metrics    {base}/metrics
  data       {data_dir}  (PostgreSQL, Redis, keys; delete it to start from scratch)
  client     {DEMO_CLIENT} / {DEMO_SECRET}, every scope but clients:admin
  account    1, holding 100,000.00 GBP
{key_line}  lost them? `riskgate dev credentials --data-dir {data_dir}` prints them again

The riskgate commands (clients, rules, audit, keys, migrate) reach this stack with:
{settings}  in another shell, all at once:  eval "$(riskgate dev env --data-dir {data_dir})"

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

Ctrl-C stops the API, the worker and both servers.
"""


def _show_embedded_notices() -> None:
    """The embedded servers' warnings (a system user created, permissions changed) reach the
    terminal: the user should know what riskgate dev did to their machine."""
    log = logging.getLogger("riskgate_dev.embedded")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("riskgate dev: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING)


def _keep_api_key(data_dir: Path, api_key: str | None) -> str | None:
    """The demo API key, saved beside the signing key the first time it is issued, so
    ``riskgate dev credentials`` can print it again; None for data dirs made before."""
    path = data_dir / API_KEY_FILE
    if api_key is not None:
        _kept_secret(path, lambda: f"{api_key}\n".encode())
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _write_env_file(data_dir: Path, env: Mapping[str, str]) -> Path:
    path = data_dir / ENV_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # holds passwords
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({name: env[name] for name in EXPORTED}, file, indent=2)
    return path


def running_env(data_dir: Path) -> dict[str, str]:
    """The settings of the ``riskgate dev`` running on ``data_dir``."""
    if not DataDirLock(data_dir).held_by_another():
        raise DevError(f"no riskgate dev is running on {data_dir} (start it with `riskgate dev`)")
    try:
        env: dict[str, str] = json.loads((data_dir / ENV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DevError(f"riskgate dev on {data_dir} is still starting ({exc})") from None
    return env


def export_lines(env: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def demo_credentials(data_dir: Path) -> str:
    """What ``riskgate dev credentials`` prints: the demo client and its saved API key."""
    api_key = _keep_api_key(data_dir, None)
    key_line = (
        f"api_key:       {api_key}\n"
        if api_key
        else "api_key:       (none saved: this data directory predates saving it; "
        "`riskgate clients rotate demo-app` issues one but changes the secret)\n"
    )
    return f"client_id:     {DEMO_CLIENT}\nclient_secret: {DEMO_SECRET}\n{key_line}"


def _preflight(host: str, port: int, data_dir: Path) -> DataDirLock:
    """Everything that can refuse, before anything starts: the lock, then both ports."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        check_port_free(host, port, "the API, --port")
        check_port_free(host, port + 1, "the webhook worker, --port + 1")
    except DevError:
        lock.release()
        raise
    return lock


def run_dev(
    *, host: str, port: int, workers: int, data_dir: Path, serve: Callable[[Settings], None]
) -> None:
    lock = _preflight(host, port, data_dir)
    _show_embedded_notices()
    try:
        _run_stack(host=host, port=port, workers=workers, data_dir=data_dir, serve=serve)
    finally:
        (data_dir / ENV_FILE).unlink(missing_ok=True)
        lock.release()


def _loopback(host: str) -> str:
    """Where this machine reaches a server bound on ``host``."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104  # not a bind
    return f"[{host}]" if ":" in host else host


def _run_stack(
    *, host: str, port: int, workers: int, data_dir: Path, serve: Callable[[Settings], None]
) -> None:
    postgres = EmbeddedPostgres(data_dir / "postgres")
    redis = EmbeddedRedis(data_dir / "redis")
    click.echo(f"starting PostgreSQL and Redis under {data_dir} ...")
    with postgres, redis:
        # The roles a DBA would create: the API and the worker never log in as the superuser.
        logins = asyncio.run(provision_database(postgres.url, DATABASE))
        applied = _migrate(logins.owner_url, data_dir)
        click.echo(f"migrations: {len(applied)} applied, schema up to date")
        api_key = _keep_api_key(data_dir, asyncio.run(_ensure_demo_data(logins.owner_url)))
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
            # The API's readiness then says whether this worker is up (restarts take seconds).
            "RISKGATE_WORKER_READY_URL": f"http://{_loopback(host)}:{port + 1}/v1/health/ready",
        }
        os.environ.update(env)
        settings = Settings.from_env()
        _write_env_file(data_dir, env)
        click.echo(_banner(f"http://{host}:{port}", data_dir, api_key, env))
        click.echo(f"  webhook worker   http://{host}:{port + 1}/v1/health/ready (and /metrics)\n")
        with _webhook_worker() as worker:
            try:
                serve(settings)
            except KeyboardInterrupt:
                if not worker.gave_up:
                    raise
        if worker.gave_up:
            raise DevError(worker.gave_up)

"""The ``riskgate`` command: one verb per process kind, plus operator tools.

Imports are local to each command: ``riskgate api`` must set ``PROMETHEUS_MULTIPROC_DIR``
before anything imports the metrics module, and ``riskgate migrate`` should not pay for Litestar.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from riskgate.settings import DatabaseSettings, Settings, SettingsError

S = TypeVar("S", bound=DatabaseSettings)


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
    """Check the audit hash chain end to end; exit 1 and name the entry where it breaks."""
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
                f"audit chain BROKEN at entry {report.broken_at}: {report.problem}", fg="red"
            )
            click.echo(f"{report.checked} entries before it verified")
            raise SystemExit(1)
        click.secho(f"audit chain intact: {report.checked} entries verified", fg="green")

    asyncio.run(run())


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

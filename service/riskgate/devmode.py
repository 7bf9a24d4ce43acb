"""``riskgate dev``: a complete local stack from Python packages alone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import click

from riskgate.embedded import EmbeddedPostgres, EmbeddedRedis
from riskgate.migrate import migrate
from riskgate.settings import Settings

DATABASE = "riskgate"


def _banner(base: str, data_dir: Path) -> str:
    return f"""
riskgate dev is up
  API        {base}   (OpenAPI UI: {base}/schema, spec: {base}/schema/openapi.json)
  metrics    {base}/metrics
  data       {data_dir}  (PostgreSQL and Redis; delete it to start from scratch)

Score an event:
  curl -sS -X POST {base}/v1/score \\
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
        postgres.create_database(DATABASE)
        applied = asyncio.run(migrate(postgres.url_for(DATABASE)))
        click.echo(f"migrations: {len(applied)} applied, schema up to date")
        env = {
            "RISKGATE_DATABASE_URL": postgres.url_for(DATABASE),
            "RISKGATE_REDIS_URL": redis.url,
            "RISKGATE_MODE": "dev",
            "RISKGATE_HOST": host,
            "RISKGATE_PORT": str(port),
            "RISKGATE_WORKERS": str(workers),
        }
        os.environ.update(env)
        settings = Settings.from_env()
        click.echo(_banner(f"http://{host}:{port}", data_dir))
        serve(settings)

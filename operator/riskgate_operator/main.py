"""``riskgate-operator`` (and ``riskgate operator``): kopf's reactor plus /metrics and /healthz
on one port, configured only by ``RISKGATE_OPERATOR_*`` variables."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from riskgate_operator import metrics
from riskgate_operator.api import RiskgateApi
from riskgate_operator.clients import ClientReconciler
from riskgate_operator.handlers import Watched, build_registry
from riskgate_operator.kube import SecretsApi
from riskgate_operator.reconcile import Reconciler
from riskgate_operator.settings import OperatorSettings, SettingsError


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for quiet in ("httpx", "httpx2"):  # one line per request otherwise (lightkube uses httpx2)
        logging.getLogger(quiet).setLevel(logging.WARNING)


def _probe_app(ready: asyncio.Event, reactor: asyncio.Task[None]) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        alive = ready.is_set() and not reactor.done()
        return web.json_response({"ok": alive}, status=200 if alive else 503)

    async def serve_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", serve_metrics)
    return app


async def run(settings: OperatorSettings) -> None:
    api = RiskgateApi(settings.api_url, settings.client_credentials)
    secrets = SecretsApi()
    registry = build_registry(
        settings,
        Watched(metrics.SUBSCRIPTION, "webhooksubscriptions", Reconciler(api, secrets),
                "subscription removed"),
        Watched(metrics.CLIENT, "apiclients",
                ClientReconciler(api, secrets, settings.workload_api_url), "client removed"),
    )  # fmt: skip
    ready = asyncio.Event()
    # One replica (Deployment strategy Recreate), so no peering between operators is needed.
    reactor = asyncio.create_task(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            ready_flag=ready,
        )
    )
    runner = web.AppRunner(_probe_app(ready, reactor), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", settings.port).start()  # noqa: S104  # probes
    try:
        await reactor
    finally:
        await runner.cleanup()
        await secrets.aclose()
        await api.aclose()


def main() -> None:
    try:
        settings = OperatorSettings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _configure_logging()
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()

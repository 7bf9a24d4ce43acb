"""The shipped rules and dashboards against a real Prometheus scraping the real processes.

``riskgate api`` with two worker processes and ``riskgate worker`` run as subprocesses; a
``prometheus`` server on loopback scrapes both every second and loads the shipped rule files,
plus the SLO groups rebuilt by the generator with second-long windows (so a burn-rate alert
can go pending within the test). A short mixed load runs: scores, debits, reads, a 404, a
429, and webhooks to a receiver that answers 200, one that answers 500 and one that answers
410. Then every recording rule and every dashboard query must return series with the labels
the dashboard shows, Prometheus' request counts must equal the requests sent, and the
matching alerts must be active.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
import yaml

from conftest import fresh_database, new_event_id, new_key
from dashboards import promrules
from dashboards.build import rule_file
from dashboards.config import BurnTier, Config
from monitoring_support import (
    OPERATOR_METRICS,
    PROMETHEUS_METRICS,
    RULE_FILES,
    is_recording_rule,
    legend_labels,
    metric_names,
    queries,
    recorded_names,
    tool,
    variable_queries,
)
from riskgate import db
from riskgate.auth.scopes import SCOPES
from riskgate.auth.service import ClientAdmin
from riskgate.settings import DatabaseSettings
from webhook_receiver import Received, Receiver
from webhook_support import KEYS, unique_db

pytestmark = pytest.mark.slow

T = TypeVar("T")
NAMESPACE = "riskgate-e2e"
FAST = Config(period="1m", tiers=(BurnTier("critical", "20s", "5s", 14.4, "1s"),))
"""The SLO groups with windows a test can wait for; the production windows stay as shipped."""
USER_ROUTES = {"/v1/score", "/v1/accounts", "/v1/transactions", "/v1/events"}
SUBSCRIPTIONS = "/v1/webhooks/subscriptions"


def fast_rule_file() -> str:
    groups = promrules.slo_groups(FAST, suffix="-fast")
    for group in groups:  # one budget-remaining series per SLO: the shipped group's
        group["rules"] = [
            r for r in group["rules"] if r.get("record") != promrules.BUDGET_REMAINING
        ]
    return rule_file(groups)


@dataclass
class Stack:
    api: str
    prometheus: str
    metrics_dir: Path
    database_url: str


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now on 127.0.0.1 (held open until all are picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process and every child it started; SIGKILL what outlives 15 s."""
    if process.poll() is not None:
        return
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()


def _wait_ready(url: str, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, _tail(logs)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready in 60 s\n{_tail(logs)}")


def _tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))


def _prometheus_config(api_port: int, worker_port: int, rules: list[Path]) -> dict[str, Any]:
    def job(name: str, port: int) -> dict[str, Any]:
        # The namespace label a Kubernetes service discovery would add.
        target = {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE}}
        return {"job_name": name, "static_configs": [target]}

    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rules],
        "scrape_configs": [job("riskgate-api", api_port), job("riskgate-worker", worker_port)],
    }


@pytest.fixture(scope="module")
async def stack(
    postgres_admin_url: str,
    redis_url: str,
    signing_key_file: Path,
) -> AsyncIterator[Stack]:
    # Outside pytest's basetemp, like the servers' data (conftest.data_root): a concurrent
    # pytest run may prune that tree under a live Prometheus.
    work = Path(tempfile.mkdtemp(prefix="riskgate-prometheus-"))
    database_url = await fresh_database(postgres_admin_url, unique_db("prom"))
    api_port, worker_port, prom_port = free_ports(3)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")},
        "RISKGATE_DATABASE_URL": database_url,
        "RISKGATE_REDIS_URL": redis_url,
        "RISKGATE_JWT_SIGNING_KEY_FILE": str(signing_key_file),
        "RISKGATE_WEBHOOK_ENCRYPTION_KEYS": KEYS,
        "RISKGATE_MODE": "dev",  # receivers on 127.0.0.1
        "RISKGATE_RATE_LIMIT": "100000/60s",
        "RISKGATE_LOG_LEVEL": "WARNING",
    }
    api_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}
    (work / "metrics").mkdir()  # prometheus_client needs it before the first import
    worker_env = {
        **env,
        "RISKGATE_WEBHOOK_RETRY_SCHEDULE": "0s,200ms,200ms",
        "RISKGATE_WEBHOOK_RETRY_JITTER": "0",
        "RISKGATE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "RISKGATE_WORKER_POLL_SECONDS": "0.2",
    }
    fast_rules = work / "slo-fast.yaml"
    fast_rules.write_text(fast_rule_file())
    config = work / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(_prometheus_config(api_port, worker_port, [*RULE_FILES, fast_rules]))
    )
    riskgate = [sys.executable, "-m", "riskgate"]
    processes = [
        _start([*riskgate, "api", "--workers", "2", "--port", str(api_port)], api_env,
               work / "api.log"),
        _start([*riskgate, "worker", "--port", str(worker_port)], worker_env, work / "worker.log"),
        _start(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            env, work / "prometheus.log",
        ),
    ]  # fmt: skip
    try:
        for url in (
            f"http://127.0.0.1:{api_port}/v1/health/ready",
            f"http://127.0.0.1:{worker_port}/v1/health/ready",
            f"http://127.0.0.1:{prom_port}/-/ready",
        ):
            await asyncio.to_thread(_wait_ready, url, processes, work)
        yield Stack(
            f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prom_port}", work / "metrics",
            database_url,
        )  # fmt: skip
    finally:
        for process in processes:
            _stop(process)
        shutil.rmtree(work, ignore_errors=True)


# --- load ---------------------------------------------------------------------------------------

Tally = collections.Counter[tuple[str, str, str]]


def _counting(tally: Tally) -> Callable[[httpx.Response], Awaitable[None]]:
    async def count(response: httpx.Response) -> None:
        path = response.request.url.path
        route = path if path in USER_ROUTES | {SUBSCRIPTIONS} else "unmatched"
        tally[(response.request.method, route, str(response.status_code))] += 1

    return count


async def _client(api: str, api_key: str, tally: Tally) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api,
        headers={"X-API-Key": api_key},
        event_hooks={"response": [_counting(tally)]},
        timeout=10,
    )


async def _clients(database_url: str) -> tuple[str, str]:
    """An API key with every scope, and one limited to 2 requests a minute."""
    settings = DatabaseSettings.from_env({}, database_url=database_url)
    pool = await db.create_pool(settings, "riskgate-test", min_size=1, max_size=2)
    try:
        admin = ClientAdmin(pool)
        full = await admin.create(f"e2e-{new_key()[-8:]}", " ".join(SCOPES))
        limited = await admin.create(f"e2e-l-{new_key()[-8:]}", "score:write", rate_limit="2/60s")
    finally:
        await pool.close()
    return full.api_key, limited.api_key


def _score(signals: dict[str, float]) -> dict[str, Any]:
    return {"event_id": new_event_id(), "source": "flight", "signals": signals}


ALLOW = {"delay": 0, "weather": 0, "geo": 0, "payment_anomaly": 0}
REVIEW = {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0}
HOLD = {"delay": 1, "weather": 1, "geo": 1, "payment_anomaly": 1}


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(path, json=body, headers={"Idempotency-Key": new_key()})


@dataclass
class Load:
    tally: Tally
    api_key: str


async def drive_load(stack: Stack, receivers: list[Receiver]) -> Load:
    tally: Tally = collections.Counter()
    full_key, limited_key = await _clients(stack.database_url)
    async with await _client(stack.api, full_key, tally) as client:
        for receiver in receivers:
            body = {"url": receiver.url, "event_types": ["decision.created"]}
            assert (await _post(client, SUBSCRIPTIONS, body)).status_code == 201
        account = await _post(
            client, "/v1/accounts",
            {"customer_ref": "cust_e2e", "currency": "GBP", "opening_balance": "50000.00"},
        )  # fmt: skip
        assert account.status_code == 201, account.text
        debit = {"account_id": account.json()["id"], "currency": "GBP"}
        sends = [_post(client, "/v1/score", _score(s)) for s in (ALLOW, REVIEW, HOLD) * 8]
        await asyncio.gather(*sends)
        for amount in ("25.00", "25.00", "25.00", "20000.00", "900000.00"):
            await _post(client, "/v1/transactions", {**debit, "amount": amount})
        for _ in range(3):
            assert (await client.get("/v1/events", params={"limit": 5})).status_code == 200
        assert (await client.get("/v1/no-such-route")).status_code == 404
    async with await _client(stack.api, limited_key, tally) as limited:
        statuses = [
            (await _post(limited, "/v1/score", _score(ALLOW))).status_code for _ in range(3)
        ]
        assert statuses == [201, 201, 429]
    return Load(tally, full_key)


# --- Prometheus ---------------------------------------------------------------------------------


async def query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.prometheus, timeout=10) as http:
        response = await http.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = 20,
    diagnose: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """Poll ``check`` until it returns something; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            seen = await diagnose() if diagnose else ""
            raise AssertionError(f"never happened: {what}\n{seen}")
        await asyncio.sleep(0.5)


def dashboard_expr(expr: str) -> str:
    """A panel's query as Grafana sends it with every variable at All."""
    return expr.replace("$namespace", ".*").replace("$job", ".*").replace("$__rate_interval", "10s")


def samples(result: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    return {
        (r["metric"]["method"], r["metric"]["route"], r["metric"]["status"]): float(r["value"][1])
        for r in result
    }


@pytest.fixture(scope="module")
async def loaded(stack: Stack) -> AsyncIterator[tuple[Stack, Load]]:
    def answer(status: int) -> Callable[[Received], tuple[int, dict[str, str], bytes]]:
        return lambda _: (status, {}, b"")

    async def scraped() -> list[dict[str, Any]] | None:
        # A counter Prometheus first sees at 1 never "increased": load only once both targets
        # have been scraped, as they are long before any incident in production.
        up = await query(stack, "up == 1")
        seen = await query(stack, 'riskgate_webhook_subscriptions_disabled_total{reason="gone"}')
        return up if len(up) == 2 and seen else None

    await eventually(scraped, "the first scrape of the API and the worker")
    receivers = [await Receiver(answer(status)).start() for status in (200, 500, 410)]
    try:
        yield stack, await drive_load(stack, receivers)
    finally:
        for receiver in receivers:
            await receiver.close()


async def test_request_counts_in_prometheus_match_the_requests_sent(
    loaded: tuple[Stack, Load],
) -> None:
    stack, load = loaded
    expected = {key: float(n) for key, n in load.tally.items()}
    user = 'route!~"/metrics|/v1/health.*"'
    expr = f"sum by (method, route, status) (riskgate_http_requests_total{{{user}}})"

    async def counted() -> dict[tuple[str, str, str], float] | None:
        got = samples(await query(stack, expr))
        assert all(got.get(k, 0) <= v for k, v in expected.items()), (got, expected)
        return got if got == expected else None

    await eventually(counted, f"Prometheus counting exactly {expected}")
    # Both API worker processes served requests and wrote their share of the counters.
    assert len(list(stack.metrics_dir.glob("counter_*.db"))) >= 2


async def test_every_recording_rule_returns_series_per_slo(loaded: tuple[Stack, Load]) -> None:
    stack, _ = loaded
    records = recorded_names()
    slos = {slo.name for slo in FAST.slos}
    for record in sorted(records):

        async def per_slo(record: str = record) -> list[dict[str, Any]] | None:
            result = await query(stack, record)
            return result if {r["metric"].get("slo") for r in result} == slos else None

        result = await eventually(per_slo, f"{record} for every SLO")
        if record != promrules.OBJECTIVE:
            assert all(r["metric"].get("namespace") == NAMESPACE for r in result), result


async def test_every_dashboard_query_returns_series_with_its_legend_labels(
    loaded: tuple[Stack, Load],
) -> None:
    stack, _ = loaded
    for board, title, target in queries():
        if board == "operator":  # no operator process in this suite: see the metrics test
            continue
        expr, labels = dashboard_expr(target["expr"]), legend_labels(target)

        async def answered(expr: str = expr, labels: set[str] = labels) -> list[Any] | None:
            result = await query(stack, expr)
            return result if result and all(labels <= set(r["metric"]) for r in result) else None

        await eventually(answered, f"{board} / {title}: {expr} with labels {labels}")


async def test_every_dashboard_variable_offers_the_scraped_values(
    loaded: tuple[Stack, Load],
) -> None:
    stack, _ = loaded
    for board, variables in variable_queries():
        if board == "operator":
            continue
        for name, (selector, label) in variables.items():
            selector = dashboard_expr(selector)

            async def offered(selector: str = selector, label: str = label) -> set[str] | None:
                async with httpx.AsyncClient(base_url=stack.prometheus) as http:
                    response = await http.get("/api/v1/series", params={"match[]": selector})
                values = {series.get(label) for series in response.json()["data"]}
                return {v for v in values if v} or None

            values = await eventually(offered, f"{board}: ${name} from {selector}")
            wanted = {"namespace": {NAMESPACE}, "job": {"riskgate-api", "riskgate-worker"}}
            assert values == wanted[name], (board, name, values)


async def test_every_metric_a_dashboard_uses_is_exported(loaded: tuple[Stack, Load]) -> None:
    stack, _ = loaded

    async def names() -> set[str] | None:
        async with httpx.AsyncClient(base_url=stack.prometheus) as http:
            found = set((await http.get("/api/v1/label/__name__/values")).json()["data"])
        return found if "riskgate_webhook_deliveries_total" in found else None

    exported = await eventually(names, "the worker's metrics scraped")
    used = {m for _, _, t in queries() for m in metric_names(t["expr"]) if not is_recording_rule(m)}
    missing = used - exported - OPERATOR_METRICS - PROMETHEUS_METRICS
    assert not missing, f"dashboards use metrics no process exports: {missing}"
    assert used & OPERATOR_METRICS == OPERATOR_METRICS, "the operator board shows every metric"


async def test_a_failing_receiver_makes_the_matching_alerts_active(
    loaded: tuple[Stack, Load],
) -> None:
    stack, load = loaded
    client = await _client(stack.api, load.api_key, load.tally)

    async def active() -> dict[str, dict[str, Any]] | None:
        # The receiver keeps failing: every new decision is another delivery it fails.
        assert (await _post(client, "/v1/score", _score(REVIEW))).status_code == 201
        async with httpx.AsyncClient(base_url=stack.prometheus) as http:
            alerts = (await http.get("/api/v1/alerts")).json()["data"]["alerts"]
        found = {
            f"{a['labels']['alertname']}/{a['labels'].get('long_window', '')}": a for a in alerts
        }
        wanted = {
            "RiskgateWebhookDeliveryErrorBudgetBurn/20s",  # the 500s burn the delivery SLO
            "RiskgateWebhookDeadLetters/",  # and run out of retries
            "RiskgateWebhookSubscriptionDisabled/",  # the 410 disables its subscription
        }
        return found if wanted <= set(found) else None

    async def seen() -> str:
        async with httpx.AsyncClient(base_url=stack.prometheus) as http:
            return str((await http.get("/api/v1/alerts")).json()["data"]["alerts"])

    async with client:
        alerts = await eventually(active, "the webhook alerts pending or firing", diagnose=seen)
    burn = alerts["RiskgateWebhookDeliveryErrorBudgetBurn/20s"]
    assert burn["state"] in {"pending", "firing"}
    assert burn["labels"]["namespace"] == NAMESPACE
    assert alerts["RiskgateWebhookSubscriptionDisabled/"]["labels"]["reason"] == "gone"
    # Nothing failed on the API: its availability SLO stays silent.
    assert not [a for a in alerts.values() if a["labels"].get("slo") == "availability"]

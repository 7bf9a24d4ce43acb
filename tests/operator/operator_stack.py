"""The operator's world, every part real: the emulated Kubernetes API over HTTP (k8s_emulator)
with both CRDs,
kubectl (installed by scripts/install-k8s-tools), `riskgate api` and `riskgate worker` as
processes on their own database, and `riskgate operator` as a process pointed at both."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import kmock
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from conftest import connect_as_app, fresh_database
from crd_rules import CRD_FILES, ROOT
from k8s_emulator import Emulator, PlainJsonServer, kubeconfig
from riskgate.auth.service import ClientAdmin, IssuedCredentials, ManagedClients
from riskgate.dblogin import APP_ROLE
from riskgate.settings import Settings
from riskgate_dev.embedded import free_port
from webhook_receiver import Received, Receiver
from webhook_support import KEYS, unique_db

WHSUBS = kmock.resource("riskgate.io", "v1alpha1", "webhooksubscriptions")
APICLIENTS = kmock.resource("riskgate.io", "v1alpha1", "apiclients")
SECRETS = kmock.resource("", "v1", "secrets")
EVENTS = kmock.resource("", "v1", "events")


@pytest.fixture(scope="session")
def kubectl_path() -> Path:
    """kubectl, installed (pinned, checksummed) by the project's own script on first use."""
    out = subprocess.run(
        [str(ROOT / "scripts/install-k8s-tools")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "kubectl"


@dataclass
class Cluster:
    emulator: Emulator
    config: Path
    kubectl_path: Path
    cache: Path
    port: int
    server: kmock.Server | None = None

    async def start_server(self) -> None:
        """Serve the emulator on its port (again): the kubeconfig keeps pointing at it."""
        server = kmock.Server(self.emulator, port=self.port, server_cls=PlainJsonServer)
        await server.__aenter__()
        self.server = server

    async def stop_server(self) -> None:
        """The API server goes away (the objects stay, as in etcd)."""
        if self.server is not None:
            server, self.server = self.server, None
            await self.emulator.end_watches()
            await server.__aexit__(None, None, None)
            await self.emulator.end_watches(ending=False)

    async def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """kubectl as a subprocess, awaited: the emulator answers from this same event loop."""
        process = await asyncio.create_subprocess_exec(
            str(self.kubectl_path), f"--kubeconfig={self.config}", f"--cache-dir={self.cache}",
            *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate(None if stdin is None else stdin.encode())
        if check and process.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {err.decode()}")
        return out.decode() + err.decode()

    async def request_rotation(self, namespace: str, ref: str) -> None:
        """A new ``riskgate.io/rotate-requested-at`` on ``ref`` (``whsub/NAME``...)."""
        stamp = datetime.now(UTC).isoformat()
        await self.kubectl(
            "annotate", "-n", namespace, ref, f"riskgate.io/rotate-requested-at={stamp}"
        )

    async def apply(self, manifest: dict[str, Any]) -> str:
        return await self.kubectl(
            "apply", "--validate=false", "-f", "-", stdin=json.dumps(manifest)
        )

    def get(self, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
        key = (resource, namespace, name)
        if key not in self.emulator.objects or self.emulator.objects[key].deleted:
            return None
        found: dict[str, Any] = self.emulator.objects[key].raw
        return found

    def events(self, namespace: str, reason: str) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (resource, ns, _), obj in self.emulator.objects.items()
            if resource == EVENTS and ns == namespace and not obj.deleted
            if obj.raw.get("reason") == reason
        ]


@pytest.fixture(scope="module")
async def cluster(
    kubectl_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    port = free_port()
    async with Emulator() as emulator:
        config = kubeconfig(work / "kubeconfig", f"http://127.0.0.1:{port}")
        made = Cluster(emulator, config, kubectl_path, work / "kube-cache", port)
        await made.start_server()
        try:
            files = [arg for path in CRD_FILES for arg in ("-f", str(path))]
            await made.kubectl("apply", "--validate=false", *files)
            yield made
        finally:
            await made.stop_server()


def _env(**values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    return {**base, **values}


@dataclass
class Process:
    """A child process with its log, started again on the same port after a stop."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str
    popen: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            # Spawning returns at once; readiness is awaited below.
            self.popen = subprocess.Popen(  # noqa: ASYNC220
                self.argv, env=self.env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                assert self.popen.poll() is None, f"{self.name} exited:\n{self.tail()}"
                try:
                    if (await http.get(self.ready_url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {timeout} s:\n{self.tail()}")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        deadline = time.monotonic() + 20
        while self.popen.poll() is None:
            assert time.monotonic() < deadline, f"{self.name} did not stop:\n{self.tail()}"
            await asyncio.sleep(0.05)

    def tail(self, full: bool = False) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text if full else text[-4000:]


@dataclass
class Stack:
    api: Process
    worker: Process
    operator: Process
    api_url: str
    operator_port: int
    database_url: str
    scorer: str
    scorer_key: str
    started: list[Process] = field(default_factory=list)

    async def managed_count(self, ref: str) -> int:
        return await self._count(
            "SELECT count(*) FROM webhook_subscriptions WHERE managed_ref = $1", ref
        )

    async def live_clients(self, name: str) -> int:
        """Clients of this name the service has (deleted ones are renamed tombstones)."""
        return await self._count(
            "SELECT count(*) FROM clients WHERE name = $1 AND status <> 'deleted'", name
        )

    async def lose_client(self, managed_ref: str) -> None:
        """The service forgets a managed client (as after a restore from an older backup)."""
        pool = await asyncpg.create_pool(
            self.database_url, min_size=1, max_size=1, server_settings={"role": APP_ROLE}
        )
        try:
            await ManagedClients(pool).delete(managed_ref, "operator:test")  # type: ignore[arg-type]
        finally:
            await pool.close()

    async def lose_keys(self, name: str) -> None:
        """The service no longer has the client's API keys (a restore from an older backup)."""
        conn = await connect_as_app(self.database_url)
        try:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE client_ref = "
                "(SELECT id FROM clients WHERE name = $1)",
                name,
            )
        finally:
            await conn.close()

    async def _count(self, query: str, argument: str) -> int:
        conn = await connect_as_app(self.database_url)
        try:
            count: int = await conn.fetchval(query, argument)
        finally:
            await conn.close()
        return count

    async def metric(self, sample_name: str, /, **labels: str) -> float | None:
        """One sample of the operator's /metrics, as Prometheus would read it."""
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{self.operator_port}/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == sample_name and sample.labels == labels:
                    return float(sample.value)
        return None


async def create_clients(database_url: str, *wanted: tuple[str, str]) -> list[IssuedCredentials]:
    """Clients made the CLI's way (``ClientAdmin.create``): one per (name, scopes)."""
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"role": APP_ROLE}
    )
    try:
        admin = ClientAdmin(pool)  # type: ignore[arg-type]
        return [await admin.create(name, scopes) for name, scopes in wanted]
    finally:
        await pool.close()


async def _clients(database_url: str, work: Path) -> tuple[str, str, Path, Path]:
    """(scorer name, scorer API key, operator client id file, secret file)."""
    suffix = uuid.uuid4().hex[:6]
    scorer, operator = await create_clients(
        database_url,
        (f"scorer-{suffix}", "score:write webhooks:read"),
        (f"operator-{suffix}", "subscriptions:sync clients:admin"),
    )
    id_file, secret_file = work / "client-id", work / "client-secret"
    id_file.write_text(operator.client_id + "\n")
    secret_file.write_text(operator.client_secret + "\n")
    return scorer.client_id, scorer.api_key, id_file, secret_file


@pytest.fixture(scope="module")
async def stack(
    cluster: Cluster,
    postgres_admin_url: str,
    settings: Settings,
    signing_key_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    database_url = await fresh_database(postgres_admin_url, unique_db("operator"))
    scorer, scorer_key, id_file, secret_file = await _clients(database_url, work)
    api_port, worker_port, operator_port = free_port(), free_port(), free_port()
    service_env = _env(
        RISKGATE_DATABASE_URL=database_url,
        RISKGATE_REDIS_URL=settings.redis_url,
        RISKGATE_JWT_SIGNING_KEY_FILE=str(signing_key_file),
        RISKGATE_WEBHOOK_ENCRYPTION_KEYS=KEYS,
        RISKGATE_MODE="dev",  # the receiver listens on 127.0.0.1
        RISKGATE_AUTH_CACHE_SECONDS="0",
        RISKGATE_WEBHOOK_RETRY_SCHEDULE="0s,200ms,200ms",
        RISKGATE_WEBHOOK_TIMEOUT_SECONDS="3",
        RISKGATE_WORKER_POLL_SECONDS="0.2",
        RISKGATE_WORKER_LEASE_SECONDS="5",
        RISKGATE_HOST="127.0.0.1",
        RISKGATE_PORT=str(api_port),
        RISKGATE_WORKERS="1",
        RISKGATE_WORKER_PORT=str(worker_port),
    )
    api_url = f"http://127.0.0.1:{api_port}"
    riskgate = [sys.executable, "-m", "riskgate"]
    api = Process("api", [*riskgate, "api"], service_env, work / "api.log",
                  f"{api_url}/v1/health/ready")  # fmt: skip
    worker = Process("worker", [*riskgate, "worker"], service_env, work / "worker.log",
                     f"http://127.0.0.1:{worker_port}/v1/health/ready")  # fmt: skip
    operator_env = _env(
        KUBECONFIG=str(cluster.config),
        RISKGATE_OPERATOR_API_URL=api_url,
        RISKGATE_OPERATOR_CLIENT_ID_FILE=str(id_file),
        RISKGATE_OPERATOR_CLIENT_SECRET_FILE=str(secret_file),
        RISKGATE_OPERATOR_PORT=str(operator_port),
        RISKGATE_OPERATOR_ROTATION_CHECK_SECONDS="1",
    )
    operator = Process("operator", [*riskgate, "operator"], operator_env, work / "operator.log",
                       f"http://127.0.0.1:{operator_port}/healthz")  # fmt: skip
    made = Stack(api, worker, operator, api_url, operator_port, database_url, scorer, scorer_key)
    try:
        await asyncio.gather(api.start(), worker.start())
        await operator.start()
        yield made
    finally:
        for process in (operator, worker, api):
            await process.stop()


@pytest.fixture
async def service_back(stack: Stack) -> AsyncIterator[None]:
    """Whatever a test stops, the next one finds the API and the operator running."""
    yield
    for process in (stack.api, stack.operator):
        if process.popen is None or process.popen.poll() is not None:
            await process.start()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.close()


def subscription(
    namespace: str, name: str, url: str, clients: list[str], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "riskgate.io/v1alpha1",
        "kind": "WebhookSubscription",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "eventTypes": ["decision.created"], "clients": clients, **spec},
    }


def api_client(namespace: str, name: str, scopes: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "riskgate.io/v1alpha1",
        "kind": "ApiClient",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scopes": scopes, **spec},
    }


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


async def until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """``check()``'s first truthy value, polled; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.1)


def secret_value(secret: dict[str, Any], key: str = "secret") -> str | None:
    encoded = (secret.get("data") or {}).get(key)
    return None if encoded is None else base64.b64decode(encoded).decode()


def signatures(request: Received) -> list[str]:
    return request.headers["webhook-signature"].split()


def verifies(request: Received, secret: str) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


async def score(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    """One POST /v1/score with ``headers`` (the caller's credential)."""
    return await http.post(
        "/v1/score",
        json={"event_id": f"ev-{time.monotonic_ns()}", "source": "flight",
              "signals": {"delay": 0.9, "weather": 0.9, "geo": 0.9, "payment_anomaly": 1}},
        headers={"Idempotency-Key": f"k-{time.monotonic_ns()}", **headers},
    )  # fmt: skip


async def delivered(stack: Stack, receiver: Receiver, api_key: str | None = None) -> Received:
    """Score once (as the scorer, or as the client of ``api_key``) and return the delivery of
    that decision."""
    async with httpx.AsyncClient(base_url=stack.api_url) as http:
        decision = await score(http, **{"X-API-Key": api_key or stack.scorer_key})
    assert decision.status_code == 201, decision.text
    wanted = decision.json()["id"]

    def arrived() -> Received | None:
        for request in receiver.received:
            if json.loads(request.body)["data"]["id"] == wanted:
                return request
        return None

    found: Received = await until(arrived, 20, "the decision's delivery")
    return found

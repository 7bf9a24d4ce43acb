"""The Reconciler as a plain function, on real parts: the riskgate app in process (over ASGI)
and Secrets in the emulated Kubernetes API (through lightkube)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient, KubeConfig

from conftest import RunningApp, fresh_database, register_client, running_app
from operator_stack import Cluster, cluster, kubectl_path  # noqa: F401  # fixtures
from riskgate.settings import Settings
from riskgate_operator.api import RiskgateApi
from riskgate_operator.clients import ClientReconciler
from riskgate_operator.kube import SecretsApi
from riskgate_operator.reconcile import PERMANENT, TEMPORARY, Reconciler, Resource
from webhook_support import unique_db, webhook_settings


@pytest.fixture(scope="module")
async def app(postgres_admin_url: str, settings: Settings) -> AsyncIterator[RunningApp]:
    url = await fresh_database(postgres_admin_url, unique_db("reconcile"))
    async with running_app(webhook_settings(settings, url)) as running:
        yield running


@pytest.fixture
async def parts(app: RunningApp, cluster: Cluster) -> AsyncIterator[tuple[RiskgateApi, SecretsApi]]:
    """The service as an operator whose client holds subscriptions:sync only, and Kubernetes."""
    _, issued = await register_client(app.runtime, "subscriptions:sync")
    api = RiskgateApi(
        "http://riskgate.test",
        lambda: (issued.client_id, issued.client_secret),
        http=app.http_client({}),
    )
    kube = AsyncClient(config=KubeConfig.from_file(cluster.config))
    yield api, SecretsApi(kube)
    await api.aclose()
    await kube.close()


@pytest.fixture
def reconciler(parts: tuple[RiskgateApi, SecretsApi]) -> Reconciler:
    return Reconciler(*parts)


def resource(clients: list[str], status: dict[str, Any] | None = None) -> Resource:
    return Resource(
        namespace="unit",
        name=f"r-{uuid.uuid4().hex[:8]}",
        uid=str(uuid.uuid4()),
        generation=1,
        spec={
            "url": "https://hooks.riskgate-test.invalid/x",
            "eventTypes": ["decision.created"],
            "clients": clients,
        },
        annotations={},
        status=status or {},
    )


def synced(status: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in status["conditions"] if c["type"] == "Synced"]
    return dict(found)


async def test_a_refusal_is_said_again_even_from_a_status_older_than_it(
    reconciler: Reconciler,
) -> None:
    res = resource(["nobody-here"])
    first = await reconciler.reconcile(res)
    assert first.result == PERMANENT
    assert synced(first.status)["reason"] == "ValidationError"
    # A timer round that read the resource before the refusal reached its status: it sends
    # nothing, and must not turn Synced back to Unknown.
    again = await reconciler.reconcile(res)
    assert again.result is None
    assert again.events == []
    assert synced(again.status)["status"] == "False"
    assert synced(again.status)["reason"] == "ValidationError"


async def test_a_second_round_on_a_synced_resource_only_reads_back(
    reconciler: Reconciler, app: RunningApp
) -> None:
    res = resource([app.caller.name])
    first = await reconciler.reconcile(res)
    assert first.result == "success"
    assert [e.reason for e in first.events] == ["SecretCreated", "Synced"]
    assert first.status["subscriptionId"]
    again = await reconciler.reconcile(res)
    assert again.result == "success"
    assert again.events == [], "nothing changed, nothing posted"
    assert synced(again.status)["status"] == "True"


async def test_without_clients_admin_subscriptions_sync_and_apiclients_say_why_not(
    parts: tuple[RiskgateApi, SecretsApi], app: RunningApp
) -> None:
    api, kube = parts
    clients = ClientReconciler(api, kube, "http://riskgate.test")
    uid = str(uuid.uuid4())
    meta = {"namespace": "unit", "name": f"c-{uid[:8]}", "uid": uid, "generation": 1}
    body = {"kind": "ApiClient", "metadata": meta, "spec": {"scopes": ["score:write"]}}
    refused = await clients.reconcile(Resource.of(body))
    assert refused.result == TEMPORARY, "fixed by the operator's client, not by the spec"
    assert synced(refused.status)["reason"] == "OperatorScopeMissing"
    assert "clients:admin" in synced(refused.status)["message"]
    # The same operator, through the same API object, still syncs subscriptions.
    webhooks = await Reconciler(api, kube).reconcile(resource([app.caller.name]))
    assert webhooks.result == "success"
    assert synced(webhooks.status)["status"] == "True"

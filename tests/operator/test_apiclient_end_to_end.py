"""ApiClients end to end, every part real: kubectl applies an ApiClient to the emulated API
server, the operator issues its credentials through the `riskgate api` process into a Secret,
and those credentials (a token from client_id/client_secret, and the api_key) score events.
Scopes follow the spec; a rotation keeps both pairs working through its overlap, then only the
new one; suspend, unsuspend and delete take effect on the credentials. Refusals: the CRD's
(unknown scope, bad rate limit), the service's (a client name too long, a name a CLI-made
client holds). A WebhookSubscription naming an ApiClient delivers its decisions. And the operator
killed between writing a pending pair and proposing it: one working pair, the old one kept; a
client or key the service lost is healed."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from operator_stack import (  # noqa: F401  # fixtures
    APICLIENTS,
    SECRETS,
    WHSUBS,
    Cluster,
    Stack,
    api_client,
    cluster,
    condition,
    create_clients,
    delivered,
    kubectl_path,
    receiver,
    score,
    secret_value,
    service_back,
    stack,
    subscription,
    until,
    verifies,
)
from webhook_receiver import Receiver

pytestmark = pytest.mark.slow
NAMESPACE = "clients"
ROTATIONS = "riskgate_operator_rotations_total"
KEYS = ("client_id", "client_secret", "api_key", "token_url", "api_url", "scope")


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        yield client


def credentials(cluster: Cluster, name: str, namespace: str = NAMESPACE) -> dict[str, str]:
    """The Secret's keys, decoded."""
    secret = cluster.get(SECRETS, namespace, f"{name}-riskgate-credentials") or {}
    return {k: v for k in secret.get("data") or {} if (v := secret_value(secret, k)) is not None}


def client_condition(cluster: Cluster, name: str, kind: str, namespace: str = NAMESPACE) -> Any:
    return condition(cluster.get(APICLIENTS, namespace, name), kind)


async def wait_client(
    cluster: Cluster, name: str, kind: str, status: str, namespace: str = NAMESPACE
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = client_condition(cluster, name, kind, namespace)
        return found if found is not None and found["status"] == status else None

    found: dict[str, Any] = await until(check, 40, f"{name}: {kind}={status}")
    return found


async def token(http: httpx.AsyncClient, pair: dict[str, str], scope: str = "") -> httpx.Response:
    """POST the Secret's token_url with its client_id/client_secret (HTTP Basic)."""
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return await http.post(
        pair["token_url"], data=form, auth=(pair["client_id"], pair["client_secret"])
    )


async def works(http: httpx.AsyncClient, pair: dict[str, str]) -> tuple[bool, bool]:
    """(a token from the pair's secret scores, its api_key scores)."""
    issued = await token(http, pair)
    by_token = (
        issued.status_code == 200
        and (await score(http, Authorization=f"Bearer {issued.json()['access_token']}")).status_code
        == 201
    )
    by_key = (await score(http, **{"X-API-Key": pair["api_key"]})).status_code == 201
    return by_token, by_key


async def until_works(http: httpx.AsyncClient, pair: dict[str, str], wanted: bool) -> None:
    async def check() -> bool:
        return await works(http, pair) == (wanted, wanted)

    await until(check, 20, f"the pair to {'work' if wanted else 'stop working'}")


async def test_apply_rescope_rotate_suspend_and_delete(
    cluster: Cluster, stack: Stack, http: httpx.AsyncClient
) -> None:
    name = "shop"
    rotation = {"every": "1h", "overlap": "6s"}
    started = time.monotonic()
    await cluster.apply(api_client(NAMESPACE, name, ["score:write"], credentialRotation=rotation))
    await cluster.kubectl(
        "wait", "-n", NAMESPACE, "--for=condition=Ready", f"rgclient/{name}", "--timeout=30s"
    )
    apply_to_ready = time.monotonic() - started
    resource = cluster.get(APICLIENTS, NAMESPACE, name)
    assert resource is not None
    secret = cluster.get(SECRETS, NAMESPACE, "shop-riskgate-credentials")
    assert secret is not None
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("ApiClient", resource["metadata"]["uid"])
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "riskgate-operator"
    first = credentials(cluster, name)
    assert sorted(first) == sorted(KEYS), "what a workload needs, and no pending pair"
    assert first["client_id"] == f"{NAMESPACE}.{name}"
    assert first["api_url"] == stack.api_url
    assert first["token_url"] == f"{stack.api_url}/oauth2/token"
    assert first["scope"] == "score:write"
    assert first["client_secret"].startswith("rgs_")
    assert first["api_key"].startswith("rgk_")
    status = resource["status"]
    assert status["clientId"] == "clients.shop"
    assert status["secretName"] == "shop-riskgate-credentials"
    assert status["lastRotationTime"]
    assert status["nextRotationTime"]
    assert status["observedGeneration"] == 1
    assert await works(http, first) == (True, True)

    # Scopes follow the spec: a token may ask for events:read once the spec grants it.
    assert (await token(http, first, "events:read")).status_code == 400
    await cluster.apply(
        api_client(NAMESPACE, name, ["score:write", "events:read"], credentialRotation=rotation)
    )
    await until(lambda: credentials(cluster, name)["scope"] == "events:read score:write", 20)
    wider = await until(
        lambda: _granted(http, first, "events:read score:write"), 20, "a token with events:read"
    )
    listed = await http.get("/v1/events", headers={"Authorization": f"Bearer {wider}"})
    assert listed.status_code == 200, listed.text

    # Rotation on demand: both pairs work through the overlap, then only the new one.
    started = time.monotonic()
    await cluster.request_rotation(NAMESPACE, f"rgclient/{name}")
    await until(lambda: credentials(cluster, name)["api_key"] != first["api_key"], 20, "rotation")
    rotation_in_secret = time.monotonic() - started
    second = credentials(cluster, name)
    assert second["client_secret"] != first["client_secret"]
    assert "pending_api_key" not in second
    assert await works(http, second) == (True, True)
    assert await works(http, first) == (True, True), "the replaced pair works in the overlap"
    expires = await until(
        lambda: (cluster.get(APICLIENTS, NAMESPACE, name) or {})["status"].get(
            "previousCredentialsExpireAt"
        ),
        10,
        "the overlap's end in the status",
    )
    assert datetime.fromisoformat(expires) > datetime.now(UTC)
    await until_works(http, first, False)
    assert await works(http, second) == (True, True)
    assert await stack.metric(ROTATIONS, kind="ApiClient", trigger="annotation") == 1
    await until(lambda: cluster.events(NAMESPACE, "CredentialsRotated"), 10, "a rotation event")

    # Suspend: the client is disabled (Ready False, Suspended), then enabled again.
    suspended = api_client(
        NAMESPACE, name, ["score:write", "events:read"], credentialRotation=rotation, suspend=True
    )
    await cluster.apply(suspended)
    await until_works(http, second, False)
    assert (await wait_client(cluster, name, "Ready", "False"))["reason"] == "Suspended"
    assert credentials(cluster, name)["api_key"] == second["api_key"], "the Secret keeps them"
    await cluster.apply({**suspended, "spec": {**suspended["spec"], "suspend": False}})
    await until_works(http, second, True)
    await wait_client(cluster, name, "Ready", "True")

    # Delete: the finalizer holds the resource until the service's client is gone.
    await cluster.kubectl("delete", "-n", NAMESPACE, f"rgclient/{name}", "--timeout=30s")
    assert cluster.get(APICLIENTS, NAMESPACE, name) is None
    assert await stack.live_clients(f"{NAMESPACE}.{name}") == 0
    assert await works(http, second) == (False, False)
    report = {
        "apply_to_ready_seconds": round(apply_to_ready, 2),
        "rotation_request_to_new_pair_in_secret_seconds": round(rotation_in_secret, 2),
    }
    print(f"\napiclient e2e measurements: {json.dumps(report)}")


async def _granted(http: httpx.AsyncClient, pair: dict[str, str], scope: str) -> str | None:
    issued = await token(http, pair, scope)
    if issued.status_code != 200:
        return None
    assert set(issued.json()["scope"].split()) == set(scope.split())
    return str(issued.json()["access_token"])


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"scopes": ["score:write", "clients:admin"]}, "is not one of"),
        ({"scopes": ["score:read"]}, "is not one of"),
        ({"scopes": ["score:write"], "rateLimit": "100 per minute"}, "does not match"),
    ],
)
async def test_the_api_server_refuses_what_the_crd_does_not_allow(
    cluster: Cluster, spec: dict[str, Any], says: str
) -> None:
    manifest = api_client(NAMESPACE, "refused", **spec)
    out = await cluster.kubectl(
        "apply", "--validate=false", "-f", "-", stdin=json.dumps(manifest), check=False
    )
    assert says in out, out
    assert cluster.get(APICLIENTS, NAMESPACE, "refused") is None


async def test_a_name_the_service_refuses_is_reported_and_issues_nothing(
    cluster: Cluster, stack: Stack
) -> None:
    # The CRD cannot see the namespace: `<namespace>.<name>` over 63 characters is the service's
    # refusal (every rate limit the CRD admits, the service takes: see test_crd).
    name = "n" * (64 - len(NAMESPACE) - 1)
    await cluster.apply(api_client(NAMESPACE, name, ["score:write"]))
    refused = await wait_client(cluster, name, "Synced", "False")
    assert refused["reason"] == "ValidationError"
    assert "63 characters" in refused["message"]
    assert "(field name)" in refused["message"]
    ready = client_condition(cluster, name, "Ready") or {}
    assert (ready["status"], ready["reason"]) == ("False", "CredentialsNotReady")
    assert "client_secret" not in credentials(cluster, name), "no credentials issued"
    await until(lambda: cluster.events(NAMESPACE, "SyncRefused"), 10, "a SyncRefused event")
    errors = await stack.metric(
        "riskgate_operator_sync_errors_total", kind="ApiClient", **{"class": "permanent"}
    )
    assert errors is not None
    assert errors >= 1


async def test_a_name_a_cli_client_holds_is_refused_and_issues_nothing(
    cluster: Cluster, stack: Stack, http: httpx.AsyncClient
) -> None:
    namespace, name = "clash", "taken"
    (theirs,) = await create_clients(stack.database_url, (f"{namespace}.{name}", "score:write"))
    await cluster.apply(api_client(namespace, name, ["score:write", "events:read"]))
    refused = await wait_client(cluster, name, "Synced", "False", namespace)
    assert refused["reason"] == "ClientNameTaken"
    assert (client_condition(cluster, name, "Ready", namespace) or {})["status"] == "False"
    mine = credentials(cluster, name, namespace)
    assert "client_secret" not in mine
    assert "api_key" not in mine
    assert theirs.api_key not in mine.values()
    assert "clientId" not in ((cluster.get(APICLIENTS, namespace, name) or {}).get("status") or {})
    # The CLI's client is untouched: its key still scores, with its own scopes.
    assert (await score(http, **{"X-API-Key": theirs.api_key})).status_code == 201


async def test_a_subscription_naming_an_apiclient_delivers_its_decisions(
    cluster: Cluster, stack: Stack, receiver: Receiver
) -> None:
    hooks = subscription(NAMESPACE, "buyer-hooks", receiver.url, [], apiClients=["buyer"])
    del hooks["spec"]["clients"]
    await cluster.apply(hooks)
    missing = await until(
        lambda: _synced_false(cluster, "buyer-hooks"), 30, "Synced=False for the missing client"
    )
    assert missing["reason"] in ("ApiClientNotFound", "ApiClientNotReady")
    await cluster.apply(api_client(NAMESPACE, "buyer", ["score:write"]))
    await wait_client(cluster, "buyer", "Ready", "True")
    await until(
        lambda: (
            (condition(cluster.get(WHSUBS, NAMESPACE, "buyer-hooks"), "Ready") or {}).get("status")
            == "True"
        ),
        40,
        "the subscription Ready",
    )
    signing = secret_value(cluster.get(SECRETS, NAMESPACE, "buyer-hooks-webhook-secret") or {})
    assert signing is not None
    arrived = await delivered(stack, receiver, credentials(cluster, "buyer")["api_key"])
    assert verifies(arrived, signing)


def _synced_false(cluster: Cluster, name: str) -> dict[str, Any] | None:
    found = condition(cluster.get(WHSUBS, NAMESPACE, name), "Synced")
    return found if found is not None and found["status"] == "False" else None


async def test_operator_killed_with_a_pending_pair_ends_with_one_pair_and_the_old_one_kept(
    cluster: Cluster, stack: Stack, http: httpx.AsyncClient, service_back: None
) -> None:
    name = "sturdy"
    rotation = {"every": "1h", "overlap": "5m"}
    await cluster.apply(api_client(NAMESPACE, name, ["score:write"], credentialRotation=rotation))
    await wait_client(cluster, name, "Ready", "True")
    old = credentials(cluster, name)

    # The service goes away; the rotation is written down as a pending pair...
    await stack.api.stop()
    await cluster.request_rotation(NAMESPACE, f"rgclient/{name}")
    await until(lambda: "pending_api_key" in credentials(cluster, name), 20, "a pending pair")
    pending = credentials(cluster, name)
    assert pending["api_key"] == old["api_key"], "workloads keep the pair that works"
    await wait_client(cluster, name, "Synced", "False")
    # ...and the operator dies before it could propose it.
    await stack.operator.stop(signal.SIGKILL)

    await stack.api.start()
    await stack.operator.start()
    await until(lambda: "pending_api_key" not in credentials(cluster, name), 30, "the promotion")
    new = credentials(cluster, name)
    assert (new["api_key"], new["client_secret"]) == (
        pending["pending_api_key"],
        pending["pending_client_secret"],
    ), "the pair written down is the one promoted"
    await wait_client(cluster, name, "Ready", "True")
    assert await works(http, new) == (True, True)
    assert await works(http, old) == (True, True), "the old pair works through its overlap"
    status = (cluster.get(APICLIENTS, NAMESPACE, name) or {})["status"]
    assert status["previousCredentialsExpireAt"]


async def test_a_client_or_key_the_service_lost_is_healed(
    cluster: Cluster, stack: Stack, http: httpx.AsyncClient
) -> None:
    name = "phoenix"
    await cluster.apply(api_client(NAMESPACE, name, ["score:write"]))
    await wait_client(cluster, name, "Ready", "True")
    kept = credentials(cluster, name)

    # The client is gone from the service (deleted there; its old key stays on record, so the
    # service will not take that pair again): recreated with a new pair.
    await stack.lose_client(f"{NAMESPACE}/{name}")
    assert await works(http, kept) == (False, False)
    await until(lambda: cluster.events(NAMESPACE, "ClientRecreated"), 20, "ClientRecreated")
    await until(lambda: credentials(cluster, name)["api_key"] != kept["api_key"], 20, "a new pair")
    recreated = credentials(cluster, name)
    assert "pending_api_key" not in recreated
    assert await works(http, recreated) == (True, True)
    assert await stack.live_clients(f"{NAMESPACE}.{name}") == 1

    # Its keys are gone: a new pair at once, no overlap (the old one works nowhere).
    await stack.lose_keys(f"{NAMESPACE}.{name}")
    await until(
        lambda: credentials(cluster, name)["api_key"] != recreated["api_key"], 20, "a new pair"
    )
    await until(lambda: cluster.events(NAMESPACE, "CredentialsHealed"), 10, "CredentialsHealed")
    healed = credentials(cluster, name)
    assert "pending_api_key" not in healed
    assert await works(http, healed) == (True, True)
    await wait_client(cluster, name, "Ready", "True")

"""The operator as a process, every part real: kubectl applies a WebhookSubscription to the
emulated API server, the operator creates its Secret and syncs it into the `riskgate api`
process, a `riskgate worker` process delivers to a real receiver, and every signature verifies
with `standardwebhooks`; a rotation request makes both secrets sign, the overlap's end leaves the
new one; delete removes it. Then the faults: the service down during create, rotation and
delete, a spec the service refuses, the operator killed in the middle of a rotation, a Secret
brought along that does not exist yet, the Kubernetes API server going away and coming back.
One stack for the whole module (each test in its own resources)."""

from __future__ import annotations

import base64
import json
import signal
import time
from datetime import datetime
from typing import Any

import psutil
import pytest

from operator_stack import (  # noqa: F401  # fixtures
    SECRETS,
    WHSUBS,
    Cluster,
    Stack,
    cluster,
    condition,
    delivered,
    kubectl_path,
    receiver,
    secret_value,
    service_back,
    signatures,
    stack,
    subscription,
    until,
    verifies,
)
from webhook_receiver import Receiver

pytestmark = pytest.mark.slow
NAMESPACE = "faults"
E2E = "e2e"
# Short enough to watch the overlap end; the operator checks every second in these tests.
ROTATION = {"every": "1h", "overlap": "6s"}
ROTATIONS = "riskgate_operator_rotations_total"


def status_of(cluster: Cluster, name: str, kind: str) -> dict[str, Any] | None:
    return condition(cluster.get(WHSUBS, NAMESPACE, name), kind)


async def wait_condition(
    cluster: Cluster, name: str, kind: str, status: str, timeout: float = 40.0
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = status_of(cluster, name, kind)
        return found if found is not None and found["status"] == status else None

    found: dict[str, Any] = await until(check, timeout, f"{name}: {kind}={status}")
    return found


def api_requests(stack: Stack, method: str, path: str) -> int:
    count = 0
    for line in stack.api.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            count += entry.get("method") == method and entry.get("path") == path
    return count


async def test_apply_rotate_and_delete_end_to_end(
    cluster: Cluster, stack: Stack, receiver: Receiver
) -> None:
    manifest = subscription(E2E, "alerts", receiver.url, [stack.scorer], secretRotation=ROTATION)
    started = time.monotonic()
    await cluster.apply(manifest)
    await cluster.kubectl(
        "wait", "-n", E2E, "--for=condition=Ready", "whsub/alerts", "--timeout=30s"
    )
    apply_to_ready = time.monotonic() - started

    resource = cluster.get(WHSUBS, E2E, "alerts")
    assert resource is not None
    secret = cluster.get(SECRETS, E2E, "alerts-webhook-secret")
    assert secret is not None
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("WebhookSubscription", resource["metadata"]["uid"])
    first = secret_value(secret)
    assert first is not None
    assert first.startswith("whsec_")
    status = resource["status"]
    assert status["secretName"] == "alerts-webhook-secret"
    assert status["observedGeneration"] == 1
    assert status["subscriptionId"]
    assert status["lastRotationTime"]
    assert status["nextRotationTime"]
    due_at = await stack.metric(
        "riskgate_operator_next_rotation_timestamp_seconds",
        kind="WebhookSubscription",
        namespace=E2E,
        name="alerts",
    )
    assert due_at is not None
    assert abs(due_at - datetime.fromisoformat(status["nextRotationTime"]).timestamp()) < 1
    synced = "jsonpath={.status.conditions[?(@.type=='Synced')].status}"
    printed = await cluster.kubectl("get", "-n", E2E, "whsub", "alerts", "-o", synced)
    assert printed.startswith("True")

    one = await delivered(stack, receiver)
    assert len(signatures(one)) == 1
    assert verifies(one, first)

    # Rotation on demand: both secrets sign until the overlap ends.
    started = time.monotonic()
    await cluster.request_rotation(E2E, "whsub/alerts")
    rotated = await until(
        lambda: secret_value(cluster.get(SECRETS, E2E, "alerts-webhook-secret") or {},
                             "previous"),
        20, "the Secret to carry the previous secret",
    )  # fmt: skip
    assert rotated == first
    current = secret_value(cluster.get(SECRETS, E2E, "alerts-webhook-secret") or {})
    assert current is not None
    assert current != first
    both = await delivered(stack, receiver)
    while len(signatures(both)) < 2:  # until the operator's sync has reached the service
        assert time.monotonic() - started < 20, "never signed with both secrets"
        both = await delivered(stack, receiver)
    rotation_live = time.monotonic() - started
    assert verifies(both, current)
    assert verifies(both, first)
    assert all(verifies(both, s) for s in (current, first))

    # After the overlap only the new secret signs, and the Secret drops the previous one.
    await until(
        lambda: "previous" not in (cluster.get(SECRETS, E2E, "alerts-webhook-secret")
                                   or {}).get("data", {"previous": 1}),
        20, "the previous secret to be dropped",
    )  # fmt: skip
    after = await delivered(stack, receiver)
    assert len(signatures(after)) == 1
    assert verifies(after, current)
    assert not verifies(after, first)
    rotations = "riskgate_operator_rotations_total"
    assert await stack.metric(rotations, kind="WebhookSubscription", trigger="annotation") == 1

    # Delete: the finalizer holds the resource until the service no longer has it.
    assert await stack.managed_count(f"{E2E}/alerts") == 1
    await cluster.kubectl("delete", "-n", E2E, "whsub/alerts", "--timeout=30s")
    assert cluster.get(WHSUBS, E2E, "alerts") is None
    assert await stack.managed_count(f"{E2E}/alerts") == 0
    due = "riskgate_operator_next_rotation_timestamp_seconds"
    assert await stack.metric(due, kind="WebhookSubscription", namespace=E2E, name="alerts") is None
    await until(lambda: cluster.events(E2E, "SecretRotated"), 10, "a SecretRotated event")

    assert stack.operator.popen is not None
    rss = psutil.Process(stack.operator.popen.pid).memory_info().rss / 2**20
    report: dict[str, Any] = {
        "apply_to_ready_seconds": round(apply_to_ready, 2),
        "rotation_to_both_signatures_seconds": round(rotation_live, 2),
        "operator_rss_mib": round(rss, 1),
    }
    print(f"\noperator e2e measurements: {json.dumps(report)}")
    assert rss < 120, report


async def test_service_down_during_create_then_ready_once_it_is_back(
    cluster: Cluster, stack: Stack, receiver: Receiver, service_back: None
) -> None:
    await stack.api.stop()
    await cluster.apply(subscription(NAMESPACE, "early", receiver.url, [stack.scorer]))
    down = await wait_condition(cluster, "early", "Synced", "False")
    assert down["reason"] == "ServiceUnreachable"
    assert (status_of(cluster, "early", "SecretReady") or {})["status"] == "True"
    await until(lambda: cluster.events(NAMESPACE, "SyncFailed"), 10, "a SyncFailed event")
    await stack.api.start()
    await wait_condition(cluster, "early", "Ready", "True")
    assert await stack.managed_count(f"{NAMESPACE}/early") == 1
    assert verifies(await delivered(stack, receiver), _secret(cluster, "early-webhook-secret"))


async def test_a_refused_spec_is_permanent_until_it_changes(
    cluster: Cluster, stack: Stack, receiver: Receiver
) -> None:
    path = f"/v1/webhooks/managed-subscriptions/{NAMESPACE}/refused"
    await cluster.apply(subscription(NAMESPACE, "refused", receiver.url, ["nobody-here"]))
    refused = await wait_condition(cluster, "refused", "Synced", "False")
    assert refused["reason"] == "ValidationError"
    assert "unknown client" in refused["message"]
    assert (status_of(cluster, "refused", "Ready") or {})["reason"] == "NotSynced"
    await until(lambda: cluster.events(NAMESPACE, "SyncRefused"), 10, "a SyncRefused event")
    # The timer keeps reading it back every second, but never sends the refused spec again.
    await until(lambda: api_requests(stack, "GET", path) >= 3, 20, "three timer rounds")
    assert api_requests(stack, "PUT", path) == 1
    errors = await stack.metric(
        "riskgate_operator_sync_errors_total", kind="WebhookSubscription", **{"class": "permanent"}
    )
    assert errors == 1

    await cluster.apply(subscription(NAMESPACE, "refused", receiver.url, [stack.scorer]))
    await wait_condition(cluster, "refused", "Ready", "True")
    assert api_requests(stack, "PUT", path) == 2


async def test_operator_killed_mid_rotation_loses_no_secret_and_rotates_once(
    cluster: Cluster, stack: Stack, receiver: Receiver, service_back: None
) -> None:
    name, secret_name = "midway", "midway-webhook-secret"
    rotation = {"every": "1h", "overlap": "5m"}
    await cluster.apply(
        subscription(NAMESPACE, name, receiver.url, [stack.scorer], secretRotation=rotation)
    )
    await wait_condition(cluster, name, "Ready", "True")
    first = _secret(cluster, secret_name)

    # The service goes away; the rotation is written to the Secret, its sync cannot happen...
    await stack.api.stop()
    await cluster.request_rotation(NAMESPACE, f"whsub/{name}")
    await until(
        lambda: secret_value(cluster.get(SECRETS, NAMESPACE, secret_name) or {}, "previous"),
        20,
        "the rotation in the Secret",
    )
    rotated = _secret(cluster, secret_name)
    await wait_condition(cluster, name, "Synced", "False")
    # ...and the operator dies right there.
    await stack.operator.stop(signal.SIGKILL)

    await stack.api.start()
    await stack.operator.start()
    await wait_condition(cluster, name, "Ready", "True")
    secret = cluster.get(SECRETS, NAMESPACE, secret_name) or {}
    assert secret_value(secret) == rotated, "rotated once, not again after the restart"
    assert secret_value(secret, "previous") == first, "the previous secret is kept"
    both = await delivered(stack, receiver)
    while len(signatures(both)) < 2:
        both = await delivered(stack, receiver)
    assert verifies(both, rotated)
    assert verifies(both, first)
    # The restarted operator rotated nothing itself.
    assert await stack.metric(ROTATIONS, kind="WebhookSubscription", trigger="annotation") == 0


async def test_delete_while_the_service_is_down_waits_and_leaves_no_orphan(
    cluster: Cluster, stack: Stack, receiver: Receiver, service_back: None
) -> None:
    await cluster.apply(subscription(NAMESPACE, "doomed", receiver.url, [stack.scorer]))
    await wait_condition(cluster, "doomed", "Ready", "True")
    await stack.api.stop()
    await cluster.kubectl("delete", "-n", NAMESPACE, "whsub/doomed", "--wait=false")
    await until(lambda: cluster.events(NAMESPACE, "DeleteFailed"), 20, "DeleteFailed event")
    held = cluster.get(WHSUBS, NAMESPACE, "doomed")
    assert held is not None, "the finalizer holds it while the service is away"
    assert held["metadata"].get("deletionTimestamp")
    assert await stack.managed_count(f"{NAMESPACE}/doomed") == 1
    await stack.api.start()
    await until(lambda: cluster.get(WHSUBS, NAMESPACE, "doomed") is None, 40, "the resource gone")
    assert await stack.managed_count(f"{NAMESPACE}/doomed") == 0


async def test_a_secret_brought_along_is_waited_for_then_used(
    cluster: Cluster, stack: Stack, receiver: Receiver
) -> None:
    mine = "whsec_" + "bXktb3duLXNlY3JldC1mb3ItdGhlLXJlY2VpdmVyIQ=="
    await cluster.apply(
        subscription(NAMESPACE, "byo", receiver.url, [stack.scorer], secretRef={"name": "byo-key"})
    )
    missing = await wait_condition(cluster, "byo", "SecretReady", "False")
    assert missing["reason"] == "SecretNotFound"
    assert await stack.managed_count(f"{NAMESPACE}/byo") == 0
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "byo-key", "namespace": NAMESPACE},
            "data": {"secret": base64.b64encode(mine.encode()).decode()},
        }
    )
    await wait_condition(cluster, "byo", "Ready", "True")
    assert cluster.get(SECRETS, NAMESPACE, "byo-webhook-secret") is None, "no secret of its own"
    assert verifies(await delivered(stack, receiver), mine)


def _secret(cluster: Cluster, name: str, key: str = "secret") -> str:
    value = secret_value(cluster.get(SECRETS, NAMESPACE, name) or {}, key)
    assert value is not None
    return value


async def test_the_operator_rides_out_the_kubernetes_api_going_away(
    cluster: Cluster, stack: Stack, receiver: Receiver
) -> None:
    assert stack.operator.popen is not None
    pid = stack.operator.popen.pid
    logged = len(stack.operator.tail(full=True))
    await cluster.stop_server()
    try:
        await until(
            lambda: "ClientConnectorError" in stack.operator.tail(full=True)[logged:],
            30,
            "the operator to notice the API server is gone",
        )
    finally:
        await cluster.start_server()
    await cluster.apply(subscription(NAMESPACE, "after", receiver.url, [stack.scorer]))
    await wait_condition(cluster, "after", "Ready", "True")
    assert stack.operator.popen.pid == pid
    assert stack.operator.popen.poll() is None, "the same process, still running"
    assert verifies(await delivered(stack, receiver), _secret(cluster, "after-webhook-secret"))

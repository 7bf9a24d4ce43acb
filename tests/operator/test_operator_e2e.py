"""End to end: kubectl applies a WebhookSubscription to the emulated API server, the real
operator process creates its Secret and syncs it into the real riskgate API, a real worker
delivers to a real receiver, and every signature verifies with `standardwebhooks`; a rotation
request makes both secrets sign, the overlap's end leaves the new one; delete removes it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
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
    signatures,
    stack,
    subscription,
    until,
    verifies,
)
from webhook_receiver import Receiver

pytestmark = pytest.mark.slow
NAMESPACE = "e2e"
# Short enough to watch the overlap end; the operator checks every second in these tests.
ROTATION = {"every": "1h", "overlap": "6s"}


async def test_apply_rotate_and_delete_end_to_end(
    cluster: Cluster, stack: Stack, receiver: Receiver
) -> None:
    manifest = subscription(
        NAMESPACE, "alerts", receiver.url, [stack.scorer], secretRotation=ROTATION
    )
    started = time.monotonic()
    await cluster.apply(manifest)
    await cluster.kubectl(
        "wait", "-n", NAMESPACE, "--for=condition=Ready", "whsub/alerts", "--timeout=30s"
    )
    apply_to_ready = time.monotonic() - started

    resource = cluster.get(WHSUBS, NAMESPACE, "alerts")
    assert resource is not None
    secret = cluster.get(SECRETS, NAMESPACE, "alerts-webhook-secret")
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
        "riskgate_operator_next_rotation_timestamp_seconds", namespace=NAMESPACE, name="alerts"
    )
    assert due_at is not None
    assert abs(due_at - datetime.fromisoformat(status["nextRotationTime"]).timestamp()) < 1
    synced = "jsonpath={.status.conditions[?(@.type=='Synced')].status}"
    printed = await cluster.kubectl("get", "-n", NAMESPACE, "whsub", "alerts", "-o", synced)
    assert printed.startswith("True")

    one = await delivered(stack, receiver)
    assert len(signatures(one)) == 1
    assert verifies(one, first)

    # Rotation on demand: both secrets sign until the overlap ends.
    requested = datetime.now(UTC).isoformat()
    started = time.monotonic()
    await cluster.kubectl(
        "annotate", "-n", NAMESPACE, "whsub/alerts", f"riskgate.io/rotate-requested-at={requested}"
    )
    rotated = await until(
        lambda: secret_value(cluster.get(SECRETS, NAMESPACE, "alerts-webhook-secret") or {},
                             "previous"),
        20, "the Secret to carry the previous secret",
    )  # fmt: skip
    assert rotated == first
    current = secret_value(cluster.get(SECRETS, NAMESPACE, "alerts-webhook-secret") or {})
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
        lambda: "previous" not in (cluster.get(SECRETS, NAMESPACE, "alerts-webhook-secret")
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
    assert await stack.managed_count(f"{NAMESPACE}/alerts") == 1
    await cluster.kubectl("delete", "-n", NAMESPACE, "whsub/alerts", "--timeout=30s")
    assert cluster.get(WHSUBS, NAMESPACE, "alerts") is None
    assert await stack.managed_count(f"{NAMESPACE}/alerts") == 0
    due = "riskgate_operator_next_rotation_timestamp_seconds"
    assert await stack.metric(due, namespace=NAMESPACE, name="alerts") is None
    await until(lambda: cluster.events(NAMESPACE, "SecretRotated"), 10, "a SecretRotated event")

    assert stack.operator.popen is not None
    rss = psutil.Process(stack.operator.popen.pid).memory_info().rss / 2**20
    report: dict[str, Any] = {
        "apply_to_ready_seconds": round(apply_to_ready, 2),
        "rotation_to_both_signatures_seconds": round(rotation_live, 2),
        "operator_rss_mib": round(rss, 1),
    }
    print(f"\noperator e2e measurements: {json.dumps(report)}")
    assert rss < 120, report

"""An ApiClient's credentials as plain functions: the pair's format, the Secret's record read back
as written, and what is due (issue, rotate, heal, wait for an overlap)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from riskgate_operator import conditions, kube, metrics
from riskgate_operator import credentials as creds
from riskgate_operator.conditions import Condition
from riskgate_operator.credentials import Record
from riskgate_operator.schedule import Rotation, policy_of

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROTATION = Rotation(every=timedelta(hours=720), overlap=timedelta(hours=24))
SHOWN = creds.Published("payments.checkout", "score:write", "http://rg/oauth2/token", "http://rg")


def issued(**changes: Any) -> Record:
    """A record whose pair the service holds (promoted at T0)."""
    record = creds.promoted(creds.first(None), T0, None)
    return Record(**{**{f: getattr(record, f) for f in record.__slots__}, **changes})


def known(record: Record) -> dict[str, Any]:
    """The service's view when it takes the record's current key."""
    assert record.current is not None
    return {"api_key_prefixes": ["rgk_other1", record.current.api_key[:10]]}


def test_pairs_are_prefixed_base64url_of_32_random_bytes() -> None:
    one, two = creds.new_pair(), creds.new_pair()
    assert one != two
    for value, prefix in ((one.client_secret, "rgs_"), (one.api_key, "rgk_")):
        assert re.fullmatch(rf"{prefix}[A-Za-z0-9_-]{{43}}", value)
        assert len(base64.urlsafe_b64decode(value[4:] + "=")) == 32


def test_a_new_client_starts_with_a_pending_pair_only() -> None:
    first = creds.first("asked-before")
    assert (first.current, first.pending_trigger) == (None, creds.CREATE)
    assert first.pending is not None
    assert creds.proposal(first) == {
        "client_secret": first.pending.client_secret,
        "api_key": first.pending.api_key,
    }
    assert creds.overlap_of(first, ROTATION) == timedelta(0), "nothing worked before it"
    done = creds.promoted(first, T0, None)
    assert (done.current, done.pending, done.rotated_at) == (first.pending, None, T0)
    assert done.handled_request == "asked-before", "a request already there is answered"


def test_nothing_is_due_before_every_has_passed() -> None:
    later = T0 + timedelta(hours=719)
    assert creds.rotation_due(issued(), ROTATION, None, later) is None


def test_the_schedule_and_a_new_annotation_ask_for_a_pair() -> None:
    record = issued()
    assert creds.rotation_due(record, ROTATION, None, T0 + timedelta(hours=720)) == "schedule"
    soon = T0 + timedelta(minutes=5)
    assert creds.rotation_due(record, ROTATION, "r1", soon) == "annotation"
    pending = creds.proposed(record, "annotation", "r1")
    assert creds.rotation_due(pending, ROTATION, "r2", soon) is None, "one pending pair at most"
    answered = creds.promoted(pending, soon, None)
    assert creds.rotation_due(answered, ROTATION, "r1", soon) is None, "answered once"
    assert creds.rotation_due(creds.first(None), ROTATION, "r1", soon) is None


def test_a_rotation_waits_while_the_replaced_pair_still_works() -> None:
    now = T0 + timedelta(hours=1)
    rotated = creds.promoted(creds.proposed(issued(), "annotation", "r1"), now,
                             now + timedelta(hours=24))  # fmt: skip
    assert creds.rotation_due(rotated, ROTATION, "r2", now + timedelta(hours=23)) is None
    assert creds.rotation_due(rotated, ROTATION, "r2", now + timedelta(hours=24)) == "annotation"


def test_a_key_the_service_lost_is_healed_at_once_even_during_an_overlap() -> None:
    record = issued(previous_expires_at=T0 + timedelta(hours=24))
    assert not creds.needs_heal(record, known(record))
    lost = {"api_key_prefixes": ["rgk_stale1"]}
    assert creds.needs_heal(record, lost)
    assert creds.needs_heal(Record(current=None), lost)
    healing = creds.proposed(record, creds.HEAL, None)
    assert not creds.needs_heal(healing, lost), "the pending pair is proposed first"
    assert creds.overlap_of(healing, ROTATION) == timedelta(0), "the lost pair works nowhere"


def test_a_rotation_keeps_the_replaced_pair_for_the_overlap() -> None:
    rotating = creds.proposed(issued(), "schedule", None)
    assert creds.overlap_of(rotating, ROTATION) == timedelta(hours=24)
    body = creds.rotate_body(rotating, timedelta(seconds=1.5))
    assert rotating.pending is not None
    assert body == {
        "overlap_seconds": 2,
        "credentials": {
            "client_secret": rotating.pending.client_secret,
            "api_key": rotating.pending.api_key,
        },
    }
    assert creds.proposal(rotating) == {
        "client_secret": rotating.pending.client_secret,
        "api_key": rotating.pending.api_key,
    }, "a PUT that must recreate the client takes the pair about to be promoted"


def test_the_secret_records_the_state_and_reads_it_back() -> None:
    for record in (
        creds.first("r0"),
        issued(),
        creds.proposed(issued(previous_expires_at=T0), "annotation", "r1"),
    ):
        data, notes = creds.secret_fields(record, SHOWN)
        owner = kube.Owner("payments", "checkout", "uid-1", kube.CLIENT_KIND)
        secret = kube.new_secret(owner, "checkout-riskgate-credentials", data, notes)
        assert creds.record_of(secret) == record
        assert creds.published_of(secret) == SHOWN
        (ref,) = secret["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("ApiClient", "uid-1", True)
        labels = secret["metadata"]["labels"]
        assert labels == {
            "app.kubernetes.io/managed-by": "riskgate-operator",
            "riskgate.io/api-client": "checkout",
        }
    data, _ = creds.secret_fields(issued(), SHOWN)
    assert data["pending_api_key"] is None, "a merge patch deletes the key"
    assert kube.decode({k: v for k, v in data.items() if v}, "scope") == "score:write"


def test_what_the_secret_shows_and_the_service_is_told() -> None:
    spec = {"scopes": ["score:write", "events:read", "score:write"], "rateLimit": "10/s"}
    shown = creds.published("payments", "checkout", spec, "https://riskgate.example.com")
    assert shown == creds.Published(
        "payments.checkout",
        "events:read score:write",
        "https://riskgate.example.com/oauth2/token",
        "https://riskgate.example.com",
    )
    assert creds.spec_body(spec) == {
        "scopes": ["events:read", "score:write"],
        "rate_limit": "10/s",
        "status": "active",
    }
    assert creds.spec_body({"scopes": ["score:write"], "suspend": True})["status"] == "disabled"
    assert creds.spec_body({"scopes": ["score:write"]})["rate_limit"] is None
    assert creds.secret_name("checkout", {}) == "checkout-riskgate-credentials"
    assert creds.secret_name("checkout", {"secretName": "mine"}) == "mine"
    assert policy_of({"every": "2h", "overlap": "5s"}) == Rotation(
        timedelta(hours=2), timedelta(seconds=5)
    )
    assert policy_of(None) == ROTATION


@pytest.mark.parametrize(
    ("given", "suspended", "status", "reason"),
    [
        ([("CredentialsReady", True), ("Synced", True)], False, True, "Ready"),
        ([("CredentialsReady", True), ("Synced", True)], True, False, "Suspended"),
        ([("CredentialsReady", False), ("Synced", True)], False, False, "CredentialsNotReady"),
        ([("CredentialsReady", True), ("Synced", False)], False, False, "NotSynced"),
    ],
)
def test_an_apiclient_is_ready_when_its_credentials_work(
    given: list[tuple[str, bool]], suspended: bool, status: bool, reason: str
) -> None:
    changes = [Condition(kind, value, "x", "") for kind, value in given]
    merged = conditions.merge(None, changes, 1, T0, conditions.CLIENT_TYPES)
    assert [c["type"] for c in merged] == ["Ready", "CredentialsReady", "Synced"]
    ready = conditions.client_ready(merged, suspended)
    assert (ready.status, ready.reason) == (status, reason)


def test_every_operator_series_exists_for_both_kinds_from_the_start() -> None:
    samples = {
        (s.name, s.labels.get("kind"))
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if "kind" in s.labels
    }
    for name in (
        "riskgate_operator_reconciles_total",
        "riskgate_operator_rotations_total",
        "riskgate_operator_sync_errors_total",
        "riskgate_operator_managed_resources",
    ):
        assert {(name, kind) for kind in ("WebhookSubscription", "ApiClient")} <= samples, name

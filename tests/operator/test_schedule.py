"""The rotation schedule and the other decisions of the operator, as plain functions."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from riskgate_operator import conditions, kube, schedule
from riskgate_operator.api import classify
from riskgate_operator.conditions import Condition
from riskgate_operator.reconcile import (
    Signing,
    backoff,
    delivery_condition,
    sync_body,
    valid_secret,
)
from riskgate_operator.schedule import Rotation, SecretState, Step, parse_duration, plan
from riskgate_operator.settings import OperatorSettings, SettingsError

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROTATION = Rotation(every=timedelta(hours=720), overlap=timedelta(hours=24))


def state(**changes: object) -> SecretState:
    base = SecretState(current=schedule.new_secret(), rotated_at=T0)
    return SecretState(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("720h", 720 * 3600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5)],
)
def test_durations_parse_like_kubernetes(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30 days", "1d", "h", "-1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = schedule.new_secret(), schedule.new_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first[6:])) == 32
    assert valid_secret(first)
    assert not valid_secret("whsec_" + base64.b64encode(b"x" * 16).decode())
    assert not valid_secret("not-a-secret")


def test_rotation_of_applies_defaults_and_none_for_a_secret_ref() -> None:
    assert schedule.rotation_of({}) == ROTATION
    assert schedule.rotation_of({"secretRotation": {"every": "2h", "overlap": "5s"}}) == Rotation(
        timedelta(hours=2), timedelta(seconds=5)
    )
    assert schedule.rotation_of({"secretRef": {"name": "mine"}}) is None


def test_no_secret_is_created() -> None:
    assert plan(None, ROTATION, None, T0).step is Step.CREATE


def test_nothing_is_due_before_every_has_passed() -> None:
    assert plan(state(), ROTATION, None, T0 + timedelta(hours=719)).step is Step.KEEP


def test_the_schedule_rotates_when_every_has_passed() -> None:
    due = plan(state(), ROTATION, None, T0 + timedelta(hours=720))
    assert (due.step, due.trigger) == (Step.ROTATE, "schedule")


def test_a_new_annotation_value_rotates_once() -> None:
    asked = plan(state(), ROTATION, "2026-12-01T13:00:00Z", T0 + timedelta(hours=1))
    assert (asked.step, asked.trigger) == (Step.ROTATE, "annotation")
    after = schedule.rotated(state(), ROTATION, "2026-12-01T13:00:00Z", T0 + timedelta(hours=1))
    assert after.handled_request == "2026-12-01T13:00:00Z"
    # Read back after a restart: the same request is not answered twice.
    again = plan(after, ROTATION, "2026-12-01T13:00:00Z", T0 + timedelta(hours=30))
    assert again.step is Step.DROP_PREVIOUS


def test_the_annotation_present_at_creation_does_not_rotate_the_first_secret() -> None:
    first = schedule.created(T0, "asked-before")
    assert plan(first, ROTATION, "asked-before", T0 + timedelta(minutes=1)).step is Step.KEEP


def test_rotation_keeps_the_previous_secret_for_the_overlap_then_drops_it() -> None:
    before = state()
    now = T0 + timedelta(hours=720)
    after = schedule.rotated(before, ROTATION, None, now)
    assert (after.previous, after.current != before.current) == (before.current, True)
    assert after.previous_expires_at == now + timedelta(hours=24)
    assert plan(after, ROTATION, None, now + timedelta(hours=23, minutes=59)).step is Step.KEEP
    assert plan(after, ROTATION, None, now + timedelta(hours=24)).step is Step.DROP_PREVIOUS
    assert schedule.dropped(after).previous is None


def test_a_request_during_an_overlap_waits_for_it_to_end() -> None:
    now = T0 + timedelta(hours=1)
    rotated = schedule.rotated(state(), ROTATION, "one", now)
    during = plan(rotated, ROTATION, "two", now + timedelta(hours=1))
    assert during.step is Step.KEEP, "rotating now would drop the previous secret early"
    after = plan(rotated, ROTATION, "two", now + timedelta(hours=24))
    assert (after.step, after.trigger) == (Step.ROTATE, "annotation")


def test_next_check_is_the_earlier_of_rotation_and_overlap_end() -> None:
    rotated = schedule.rotated(state(), ROTATION, None, T0)
    assert schedule.next_check(rotated, ROTATION) == T0 + timedelta(hours=24)
    assert schedule.next_check(schedule.dropped(rotated), ROTATION) == T0 + timedelta(hours=720)


def test_the_secret_records_the_state_and_reads_it_back() -> None:
    rotated = schedule.rotated(state(), ROTATION, "req-1", T0)
    owner = kube.Owner("payments", "alerts", "uid-1")
    secret = kube.owned_secret(owner, rotated)
    assert secret["metadata"]["name"] == "alerts-webhook-secret"
    (ref,) = secret["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("WebhookSubscription", "uid-1", True)
    assert kube.state_of(secret) == rotated
    patch = kube.state_patch(schedule.dropped(rotated), "42")
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["data"]["previous"] is None, "a merge patch deletes the key"


def test_the_sync_body_carries_both_secrets_during_an_overlap() -> None:
    expires = T0 + timedelta(hours=24)
    signing = Signing([("whsec_new", None), ("whsec_old", expires)], "s")
    spec = {
        "url": "https://x.example.com/h",
        "eventTypes": ["transaction.flagged", "decision.created"],
        "clients": ["checkout"],
        "suspend": True,
    }
    body = sync_body(spec, signing, ["checkout", "payments.billing", "checkout"])
    assert body["event_types"] == ["decision.created", "transaction.flagged"]
    assert body["paused"] is True
    assert body["clients"] == ["checkout", "payments.billing"]
    assert body["secrets"] == [
        {"value": "whsec_new", "expires_at": None},
        {"value": "whsec_old", "expires_at": "2026-12-02T12:00:00Z"},
    ]


def test_conditions_keep_their_transition_time_while_status_holds() -> None:
    first = conditions.merge(None, [Condition("Synced", True, "Synced", "ok")], 1, T0)
    assert [c["type"] for c in first] == ["Ready", "SecretReady", "Synced", "DeliveryHealthy"]
    assert first[0]["status"] == "Unknown"
    later = T0 + timedelta(minutes=5)
    same = conditions.merge(first, [Condition("Synced", True, "Synced", "still")], 2, later)
    assert same[2]["lastTransitionTime"] == "2026-12-01T12:00:00Z"
    assert (same[2]["message"], same[2]["observedGeneration"]) == ("still", 2)
    moved = conditions.merge(same, [Condition("Synced", False, "Refused", "no")], 2, later)
    assert moved[2]["lastTransitionTime"] == "2026-12-01T12:05:00Z"


def test_ready_needs_the_secret_and_the_sync() -> None:
    both = conditions.merge(
        None,
        [Condition("SecretReady", True, "x", ""), Condition("Synced", True, "x", "")],
        1,
        T0,
    )
    assert conditions.ready(both, suspended=False).status is True
    assert conditions.ready(both, suspended=True).reason == "Suspended"
    unsynced = conditions.merge(both, [Condition("Synced", False, "Refused", "")], 1, T0)
    assert conditions.ready(unsynced, suspended=False).reason == "NotSynced"


@pytest.mark.parametrize(
    ("status", "body", "temporary", "reason"),
    [
        (422, {"type": "https://riskgate.io/problems/webhook-target-refused", "detail": "no"},
         False, "WebhookTargetRefused"),
        (409, {"type": "https://riskgate.io/problems/conflict", "detail": "x"}, False, "Conflict"),
        (503, {"type": "https://riskgate.io/problems/dependency-unavailable"}, True,
         "DependencyUnavailable"),
        (429, {}, True, "HTTP429"),
        (401, {}, True, "HTTP401"),
    ],
)  # fmt: skip
def test_service_answers_are_classified(
    status: int, body: dict[str, str], temporary: bool, reason: str
) -> None:
    error = classify(httpx.Response(status, json=body, headers={"Retry-After": "7"}))
    assert (error.temporary, error.reason, error.retry_after) == (temporary, reason, 7.0)


def test_backoff_doubles_with_jitter_up_to_a_cap_and_honours_retry_after() -> None:
    for retry, ceiling in ((0, 1.0), (3, 8.0), (30, 120.0)):
        delays = [backoff(retry) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1, "jittered"
    assert backoff(0, retry_after=30) == 30


def test_delivery_health_maps_to_the_condition() -> None:
    assert delivery_condition({"status": "disabled", "disabled_reason": "gone"}).reason == (
        "DisabledGone"
    )
    failing = {"status": "active", "health": {"failing_since": "2026-12-01T00:00:00Z"}}
    assert delivery_condition(failing).status is False
    assert delivery_condition({"status": "active", "health": {}}).reason == "NoDeliveriesYet"


def test_settings_fail_fast_naming_the_variable(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    env = {
        "RISKGATE_OPERATOR_API_URL": "http://riskgate-api:8000/",
        "RISKGATE_OPERATOR_CLIENT_ID_FILE": str(secret),
        "RISKGATE_OPERATOR_CLIENT_SECRET_FILE": str(secret),
        "RISKGATE_OPERATOR_NAMESPACES": " payments, ,risk ",
    }
    loaded = OperatorSettings.from_env(env)
    assert (loaded.api_url, loaded.namespaces, loaded.port) == (
        "http://riskgate-api:8000",
        ("payments", "risk"),
        8080,
    )
    assert loaded.rotation_check_seconds == 60
    assert loaded.client_credentials() == ("s", "s")
    assert OperatorSettings.from_env({**env, "RISKGATE_OPERATOR_NAMESPACES": ""}).namespaces == ()
    for name, value, says in (
        ("API_URL", "riskgate-api", "API_URL must be"),
        ("CLIENT_ID_FILE", "", "CLIENT_ID_FILE is required"),
        ("CLIENT_SECRET_FILE", "/nope", "not a readable file"),
        ("PORT", "http", "PORT must be a number"),
        ("ROTATION_CHECK_SECONDS", "0", "between"),
    ):
        with pytest.raises(SettingsError, match=says):
            OperatorSettings.from_env({**env, f"RISKGATE_OPERATOR_{name}": value})

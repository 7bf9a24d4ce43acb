"""Every alert, unit-tested with ``promtool test rules`` against the shipped rule files:
it fires when it should (at the expected minute, for each burn-rate window), and stays silent
on a healthy series and on a short blip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from promtool_support import Case, alert_rules, counter, expected, run_promtool_tests

from monitoring_support import RULE_FILES, tool

NS = 'namespace="prod"'
API = f'{NS}, job="riskgate-api", method="POST", route="/v1/score"'
PER_MINUTE = 100  # events per sample; errors replace good events, so the total is constant


def slo_series(
    slo: str, history: int, errors: tuple[tuple[int, float], ...], minutes: int = 1
) -> dict[str, str]:
    """Good and bad counters of ``slo``: ``history`` healthy samples, then ``errors``
    (samples, bad events per minute) segments; a sample covers ``minutes`` minutes."""
    per = PER_MINUTE * minutes
    bad = counter((history, 0), *((n, e * minutes) for n, e in errors))
    good = counter((history, per), *((n, per - e * minutes) for n, e in errors))
    total = counter((history + sum(n for n, _ in errors), per))
    if slo == "availability":
        return {
            f'riskgate_http_requests_total{{{API}, status="201"}}': good,
            f'riskgate_http_requests_total{{{API}, status="503"}}': bad,
            # Readiness failing all along must not count: probes are not user traffic.
            f'riskgate_http_requests_total{{{NS}, job="riskgate-api", method="GET", '
            'route="/v1/health/ready", status="503"}': total,
        }
    if slo == "latency":
        return {
            f'riskgate_http_request_duration_seconds_bucket{{{API}, le="0.45"}}': good,
            f"riskgate_http_request_duration_seconds_count{{{API}}}": total,
        }
    worker = f'{NS}, job="riskgate-worker"'
    return {
        f'riskgate_webhook_deliveries_total{{{worker}, outcome="succeeded"}}': good,
        f'riskgate_webhook_deliveries_total{{{worker}, outcome="retrying"}}': bad,
        f'riskgate_webhook_deliveries_total{{{worker}, outcome="exhausted"}}': counter((1, 0)),
    }


SLOS = {
    "availability": ("RiskgateAvailabilityErrorBudgetBurn", 0.001),
    "latency": ("RiskgateLatencyErrorBudgetBurn", 0.05),
    "webhook_delivery": ("RiskgateWebhookDeliveryErrorBudgetBurn", 0.001),
}
BURN = 20  # every case burns the budget 20x: every tier fires, each at its own time


def tier(slo: str, long_window: str, short_window: str) -> dict[str, object]:
    labels = {"namespace": "prod", "slo": slo, "long_window": long_window}
    return expected(SLOS[slo][0], **labels, short_window=short_window)


def bad_per_sample(slo: str) -> float:
    return BURN * SLOS[slo][1] * PER_MINUTE


def fast_tier_case(slo: str) -> Case:
    """1-minute samples, 100 min of health, then 20x burn. The 1h window crosses 14.4x after
    43.2 min, the 5m one after 3.6 min; with ``for: 2m`` the page fires between 45 and 46 min.
    (The 6h tier sees only 100 min of history here, crosses 6x after 43 min and fires after
    58; the ticket tier waits an hour: neither is due by minute 47.)"""
    alert, t0 = SLOS[slo][0], 100
    series = slo_series(slo, t0, ((120, bad_per_sample(slo)),))
    case = Case(f"{slo}: fast burn pages after 45 minutes", series)
    return (
        case.at(t0 - 1, alert)  # healthy
        .at(t0 + 10, alert)  # the 5m window is over 14.4x, the 1h one not yet
        .at(t0 + 44, alert)  # pending (for: 2m), not firing
        .at(t0 + 47, alert, tier(slo, "1h", "5m"))
    )


def slow_tier_case(slo: str) -> Case:
    """15-minute samples, 3d15m of health, then 20x burn. The 6h window crosses 6x after
    108 min: pending at 120, page at 135 (``for: 15m``). The 3d window crosses 1x after
    216 min: pending at 225, ticket at 285 (``for: 1h``). (A 5m window is empty at this
    resolution: the fast tier is the case above.)

    The objective is an input series here, as the chart's objectives group would record it:
    at a step longer than Prometheus' 5-minute lookback, the SLO group could not read the
    objective another group recorded in the same step."""
    alert, t0 = SLOS[slo][0], 4335
    series = slo_series(slo, t0 // 15, ((22, bad_per_sample(slo)),), minutes=15)
    objective = 1 - SLOS[slo][1]
    series[f'riskgate:slo_objective:ratio{{slo="{slo}"}}'] = f"{objective!r}x320"
    slow, ticket = tier(slo, "6h", "30m"), tier(slo, "3d", "6h")
    case = Case(f"{slo}: slow burn pages after 2h15m, tickets after 4h45m", series, interval="15m")
    return (
        case.at(t0 - 15, alert)
        .at(t0 + 120, alert)
        .at(t0 + 135, alert, slow)
        .at(t0 + 270, alert, slow)
        .at(t0 + 285, alert, slow, ticket)
    )


def blip_case(slo: str) -> Case:
    """100 min of health, then one bad minute: it tips the 5m window over 14.4x (where the
    budget allows it), but no long window, so no tier fires."""
    alert, t0 = SLOS[slo][0], 100
    blip = min(0.9 * SLOS[slo][1] * PER_MINUTE * t0, PER_MINUTE)
    series = slo_series(slo, t0, ((1, blip), (40, 0)))
    case = Case(f"{slo}: a one-minute blip pages no one", series)
    for minute in (t0 + 1, t0 + 3, t0 + 6, t0 + 30):
        case.at(minute, alert)
    return case


@pytest.mark.parametrize("slo", list(SLOS))
def test_burn_rate_alerts_fire_at_the_expected_minute_per_window(slo: str, tmp_path: Path) -> None:
    groups = ["riskgate-slo-objectives", f"riskgate-slo-{slo}"]
    run_promtool_tests([fast_tier_case(slo), blip_case(slo)], tmp_path, groups)
    run_promtool_tests([slow_tier_case(slo)], tmp_path, groups[1:], interval="15m")


WORKER = f'{NS}, job="riskgate-worker"'


def gauge(*values: float) -> str:
    return " ".join(_value(v) for v in values)


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def webhook_cases() -> list[Case]:
    age = "riskgate_webhook_backlog_oldest_age_seconds"
    stale = Case(
        "backlog: the deliveries queue ages 60 s a minute, the outbox stays fresh",
        {
            f'{age}{{{WORKER}, queue="deliveries"}}': counter((30, 60)),
            f'{age}{{{WORKER}, queue="outbox"}}': "1x30",
        },
    )
    stale.at(5, "RiskgateWebhookBacklogStale").at(10, "RiskgateWebhookBacklogStale")
    fired = expected("RiskgateWebhookBacklogStale", namespace="prod", queue="deliveries")
    stale.at(12, "RiskgateWebhookBacklogStale", fired)
    blip = Case(
        "backlog: four minutes over the bound, then drained",
        {f'{age}{{{WORKER}, queue="deliveries"}}': gauge(0, 0, 400, 400, 400, 400, *[0] * 20)},
    )
    for minute in (3, 6, 8, 15):
        blip.at(minute, "RiskgateWebhookBacklogStale")

    deliveries = "riskgate_webhook_deliveries_total"
    dead = Case(
        "dead letters: one delivery exhausted at minute 10",
        {
            f'{deliveries}{{{WORKER}, outcome="exhausted"}}': "0x10 1x40",
            f'{deliveries}{{{WORKER}, outcome="succeeded"}}': counter((50, 10)),
        },
    )
    fired = expected("RiskgateWebhookDeadLetters", namespace="prod")
    dead.at(9, "RiskgateWebhookDeadLetters").at(12, "RiskgateWebhookDeadLetters", fired)
    dead.at(45, "RiskgateWebhookDeadLetters")

    disabled = "riskgate_webhook_subscriptions_disabled_total"
    gone = Case(
        "disabled subscriptions: one receiver answered 410 at minute 10",
        {
            f'{disabled}{{{WORKER}, reason="gone"}}': "0x10 1x40",
            f'{disabled}{{{WORKER}, reason="failing"}}': "0x50",
        },
    )
    gone.at(9, "RiskgateWebhookSubscriptionDisabled").at(45, "RiskgateWebhookSubscriptionDisabled")
    gone.at(
        12,
        "RiskgateWebhookSubscriptionDisabled",
        expected("RiskgateWebhookSubscriptionDisabled", namespace="prod", reason="gone"),
    )
    return [stale, blip, dead, gone]


def dependency_cases() -> list[Case]:
    cases = []
    for alert, metric, hold in (
        ("RiskgatePostgresUnavailable", "riskgate_postgres_unavailable_total", 3),
        ("RiskgateRedisUnavailable", "riskgate_redis_unavailable_total", 5),
    ):
        api = f'{NS}, job="riskgate-api", operation="request"'
        # Failures from minute 10 to 30; one stray failure at minute 40.
        outage = Case(
            f"{alert}: a 20-minute outage, later a single failure",
            {f"{metric}{{{api}}}": "0x10 5+5x20 100x9 101x30"},
        )
        fired = expected(alert, namespace="prod", job="riskgate-api")
        outage.at(5, alert).at(10 + hold, alert).at(12 + hold, alert, fired)
        outage.at(40, alert).at(42, alert).at(44, alert).at(48, alert)
        cases.append(outage)
    down = Case(
        "targets: the worker stops answering scrapes at minute 10",
        {
            'up{namespace="prod", job="riskgate-worker", instance="10.0.0.7:8001"}': "1x10 0x20",
            'up{namespace="prod", job="riskgate-api", instance="10.0.0.8:8000"}': "1x30",
            'up{namespace="prod", job="kube-state-metrics", instance="10.0.0.9:8080"}': "0x30",
        },
    )
    labels = {"namespace": "prod", "job": "riskgate-worker", "instance": "10.0.0.7:8001"}
    down.at(9, "RiskgateTargetDown").at(14, "RiskgateTargetDown")
    down.at(16, "RiskgateTargetDown", expected("RiskgateTargetDown", **labels))
    return [*cases, down]


OPERATOR = 'namespace="riskgate-system", job="riskgate-operator", kind="WebhookSubscription"'


def operator_cases() -> list[Case]:
    reconciles = "riskgate_operator_reconciles_total"
    temporary = Case(
        "operator: temporary errors from minute 10 on; one stray error in another kind",
        {
            f'{reconciles}{{{OPERATOR}, result="temporary_error"}}': "0x10 2+2x40",
            f'{reconciles}{{{OPERATOR}, result="success"}}': counter((50, 3)),
            'riskgate_operator_reconciles_total{namespace="riskgate-system", '
            'job="riskgate-operator", kind="ApiClient", result="temporary_error"}': "0x10 1x40",
        },
    )
    labels = {"namespace": "riskgate-system", "job": "riskgate-operator"}
    temporary.at(25, "RiskgateOperatorReconcileErrors")
    temporary.at(
        27,
        "RiskgateOperatorReconcileErrors",
        expected("RiskgateOperatorReconcileErrors", **labels, kind="WebhookSubscription"),
    )
    permanent = Case(
        "operator: one permanent error at minute 10",
        {f'{reconciles}{{{OPERATOR}, result="permanent_error"}}': "0x10 1x40"},
    )
    permanent.at(9, "RiskgateOperatorPermanentError").at(30, "RiskgateOperatorPermanentError")
    permanent.at(
        11,
        "RiskgateOperatorPermanentError",
        expected("RiskgateOperatorPermanentError", **labels, kind="WebhookSubscription"),
    )
    # promtool's clock starts at 0: due at 600 s, overdue past 600 + 1800 s (minute 40).
    due = "riskgate_operator_next_rotation_timestamp_seconds"
    overdue = Case(
        "rotation: one secret due at minute 10 never rotates, another one does",
        {
            f'{due}{{job="riskgate-operator", kind="ApiClient", namespace="team-a", '
            'name="orders"}': "600x60",
            f'{due}{{job="riskgate-operator", kind="WebhookSubscription", namespace="team-a", '
            'name="billing"}': "1200x20 90000x40",
        },
    )
    overdue.at(44, "RiskgateSecretRotationOverdue")
    overdue.at(
        47,
        "RiskgateSecretRotationOverdue",
        expected(
            "RiskgateSecretRotationOverdue", kind="ApiClient", namespace="team-a", name="orders"
        ),
    )
    return [temporary, permanent, overdue]


def fraud_cases() -> list[Case]:
    """A day at one flag per 10 minutes, then 2 a minute from minute 1450: the 15m rate beats
    3x the daily one and 5 flags from minute 1453, so it fires at 1463 (``for: 10m``)."""
    base = f"{NS}"
    spike = Case(
        "fraud: a spike against a day of usual flags",
        {f"fraud_alerts_total{{{base}}}": counter((1450, 0.1), (60, 2))},
    )
    spike.at(1449, "RiskgateFraudFlagsSpike").at(1461, "RiskgateFraudFlagsSpike")
    spike.at(1465, "RiskgateFraudFlagsSpike", expected("RiskgateFraudFlagsSpike", namespace="prod"))
    few = Case(
        "fraud: four flags in a minute on a quiet day is not a spike",
        {f"fraud_alerts_total{{{base}}}": "0x1450 4x60"},
    )
    for minute in (1452, 1460, 1470):
        few.at(minute, "RiskgateFraudFlagsSpike")
    return [spike, few]


def test_operational_alerts_fire_when_they_should_and_not_on_blips(tmp_path: Path) -> None:
    groups = ["riskgate-webhooks", "riskgate-dependencies", "riskgate-operator"]
    run_promtool_tests([*webhook_cases(), *dependency_cases(), *operator_cases()], tmp_path, groups)
    run_promtool_tests(fraud_cases(), tmp_path, ["riskgate-fraud"], interval="1m")


def test_every_alert_has_a_unit_test() -> None:
    source = Path(__file__).read_text()
    untested = [name for name in alert_rules() if f'"{name}"' not in source]
    assert not untested, f"alerts without a promtool case here: {untested}"


def test_every_alert_has_summary_description_runbook_and_severity() -> None:
    for name, rules in alert_rules().items():
        for rule in rules:
            assert rule["labels"]["severity"] in {"critical", "warning"}, name
            annotations = rule["annotations"]
            assert set(annotations) == {"summary", "description", "runbook_url"}, name
            assert annotations["runbook_url"].endswith(f"#{name.lower()}"), name


def test_promtool_accepts_every_shipped_rule_file() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

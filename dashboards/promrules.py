"""Prometheus rule groups: SLI recordings, burn rates, and every alert, built from ``config``.

Naming follows Prometheus' ``level:metric:operations`` convention. Every SLI is aggregated
``by (namespace)``: one SLO per installation of the chart.
"""

from __future__ import annotations

from typing import Any

from dashboards.config import RUNBOOK_URL, Config, Slo, seconds

Rule = dict[str, Any]
Group = dict[str, Any]

OBJECTIVE = "riskgate:slo_objective:ratio"
BY = "namespace"


def errors_ratio(window: str) -> str:
    return f"riskgate:slo_errors:ratio_rate{window}"


def burn_rate(window: str) -> str:
    return f"riskgate:slo_burn_rate:ratio_rate{window}"


BUDGET_REMAINING = "riskgate:slo_error_budget_remaining:ratio"


def _rate(selector: str, window: str) -> str:
    return f"sum by ({BY}) (rate({selector}[{window}]))"


def _errors_expr(slo: Slo, window: str) -> str:
    total = _rate(slo.total, window)
    if slo.good:
        return f"1 - {_rate(slo.good, window)} / {total}"
    # No 5xx yet means no 5xx series at all: count that as zero errors, not as no data.
    return f"({_rate(slo.errors, window)} or 0 * {total})\n/\n{total}"


def runbook(alert: str) -> str:
    """The alert's own section of ``docs/runbook.md`` (GitHub-style heading anchor)."""
    return f"{RUNBOOK_URL}#{alert.lower()}"


def alert(
    name: str,
    expr: str,
    *,
    severity: str,
    summary: str,
    description: str,
    for_: str = "0m",
    labels: dict[str, str] | None = None,
) -> Rule:
    """One alerting rule. Annotations use ``{{ $labels.x }}`` only: a value in them would
    change on every evaluation, and notifications should be stable."""
    rule: Rule = {"alert": name, "expr": expr}
    if for_ != "0m":
        rule["for"] = for_
    rule["labels"] = {"severity": severity, **(labels or {})}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": runbook(name),
    }
    return rule


def objectives_group(config: Config) -> Group:
    """Constant series, one per SLO: the only group the chart templates from its values."""
    return {
        "name": "riskgate-slo-objectives",
        "rules": [
            {"record": OBJECTIVE, "expr": f"vector({slo.objective})", "labels": {"slo": slo.name}}
            for slo in config.slos
        ],
    }


def _slo_recordings(slo: Slo, config: Config) -> list[Rule]:
    selector = f'{{slo="{slo.name}"}}'
    rules: list[Rule] = [
        {"record": errors_ratio(w), "expr": _errors_expr(slo, w), "labels": {"slo": slo.name}}
        for w in config.windows
    ]
    rules += [
        {
            "record": burn_rate(w),
            "expr": f"{errors_ratio(w)}{selector}\n/ on (slo) group_left ()\n"
            f"(1 - {OBJECTIVE}{selector})",
            "labels": {"slo": slo.name},
        }
        for w in config.windows
    ]
    # The share of the period's budget not yet spent: 1 at zero errors, 0 when all is spent.
    rules.append(
        {
            "record": BUDGET_REMAINING,
            "expr": f"1 - {burn_rate(config.period)}{selector}",
            "labels": {"slo": slo.name},
        }
    )
    return rules


def _slo_alerts(slo: Slo, config: Config) -> list[Rule]:
    selector = f'{{slo="{slo.name}"}}'
    rules = []
    for tier in config.tiers:
        factor = f"{tier.factor:g}"
        lasts = _budget_lasts(tier.factor, config.period)
        expr = (
            f"{burn_rate(tier.long_window)}{selector} > {factor}\n"
            f"and\n{burn_rate(tier.short_window)}{selector} > {factor}"
        )
        rules.append(
            alert(
                slo.alert,
                expr,
                severity=tier.severity,
                for_=tier.for_,
                labels={
                    "slo": slo.name,
                    "long_window": tier.long_window,
                    "short_window": tier.short_window,
                },
                summary=f"{slo.title} SLO: error budget burning {factor}x too fast",
                description=(
                    f"{slo.meaning[0].upper()}{slo.meaning[1:]} at more than {factor} times "
                    f"the rate the {slo.objective:.4g} objective allows, over the last "
                    f"{tier.long_window} and {tier.short_window}. At this pace the "
                    f"{config.period} error budget lasts {lasts}."
                ),
            )
        )
    return rules


def _budget_lasts(factor: float, period: str) -> str:
    hours = seconds(period) / factor / 3600
    return f"{hours:.0f} hours" if hours < 72 else f"{hours / 24:.0f} days"


def slo_groups(config: Config, suffix: str = "") -> list[Group]:
    """One group per SLO: its recordings first, so its alerts see this evaluation's values."""
    return [
        {
            "name": f"riskgate-slo-{slo.name}{suffix}",
            "rules": _slo_recordings(slo, config) + _slo_alerts(slo, config),
        }
        for slo in config.slos
    ]


def _webhook_alerts(config: Config) -> list[Rule]:
    age = config.webhook_backlog_age_seconds
    return [
        alert(
            "RiskgateWebhookBacklogStale",
            f"max by ({BY}, queue) (riskgate_webhook_backlog_oldest_age_seconds) > {age}",
            for_="5m",
            severity="warning",
            summary="Webhooks are waiting too long to be sent",
            description=(
                "The oldest item of the {{ $labels.queue }} queue has waited more than "
                f"{age} s for 5 minutes: workers are down, too few, or stuck on the database."
            ),
        ),
        alert(
            "RiskgateWebhookDeadLetters",
            f"sum by ({BY}) "
            '(increase(riskgate_webhook_deliveries_total{outcome="exhausted"}[30m])) > 0',
            severity="warning",
            summary="Webhook deliveries ran out of retries",
            description=(
                "Deliveries were exhausted (dead-lettered) in the last 30 minutes: a receiver "
                "failed through the whole retry schedule. They stay replayable."
            ),
        ),
        alert(
            "RiskgateWebhookSubscriptionDisabled",
            f"sum by ({BY}, reason) (increase(riskgate_webhook_subscriptions_disabled_total[30m]))"
            " > 0",
            severity="warning",
            summary="A webhook subscription was disabled",
            description=(
                "The worker disabled a subscription in the last 30 minutes (reason: "
                "{{ $labels.reason }}): its receiver stops getting events until it is re-enabled."
            ),
        ),
    ]


def _dependency_alerts(config: Config) -> list[Rule]:
    # rate over 2m, held for longer than that: a blip of failures never pages, an outage does.
    return [
        alert(
            "RiskgatePostgresUnavailable",
            f"sum by ({BY}, job) (rate(riskgate_postgres_unavailable_total[2m])) > 0",
            for_="3m",
            severity="critical",
            summary="riskgate cannot reach PostgreSQL",
            description=(
                "{{ $labels.job }} has failed to reach PostgreSQL continuously for 3 minutes: "
                "API writes answer 503 and webhook delivery has stopped."
            ),
        ),
        alert(
            "RiskgateRedisUnavailable",
            f"sum by ({BY}, job) (rate(riskgate_redis_unavailable_total[2m])) > 0",
            for_="5m",
            severity="warning",
            summary="riskgate is running without Redis",
            description=(
                "{{ $labels.job }} has been serving without Redis for 5 minutes: rate limits "
                "are not enforced (fail open) and idempotency locks fall back to PostgreSQL."
            ),
        ),
        alert(
            "RiskgateTargetDown",
            f'up{{job=~"{config.target_jobs}"}} == 0',
            for_="5m",
            severity="warning",
            summary="Prometheus cannot scrape a riskgate process",
            description=(
                "{{ $labels.job }} at {{ $labels.instance }} has not answered /metrics for "
                "5 minutes; its SLIs and alerts are blind meanwhile."
            ),
        ),
    ]


def _operator_alerts(config: Config) -> list[Rule]:
    overdue = config.rotation_overdue_seconds
    return [
        alert(
            "RiskgateOperatorReconcileErrors",
            f"sum by ({BY}, job, kind) "
            '(rate(riskgate_operator_reconciles_total{result="temporary_error"}[15m])) > 0',
            for_="15m",
            severity="warning",
            summary="The operator keeps failing to reconcile {{ $labels.kind }} resources",
            description=(
                "Reconciles of {{ $labels.kind }} have ended in temporary errors for 15 minutes: "
                "the operator retries with backoff but is not getting through."
            ),
        ),
        alert(
            "RiskgateOperatorPermanentError",
            f"sum by ({BY}, job, kind) "
            '(increase(riskgate_operator_reconciles_total{result="permanent_error"}[15m])) > 0',
            severity="warning",
            summary="The operator gave up on a {{ $labels.kind }} resource",
            description=(
                "A {{ $labels.kind }} reconcile failed permanently: the resource's Ready "
                "condition is False with the reason, and nothing changes until it is fixed."
            ),
        ),
        alert(
            "RiskgateSecretRotationOverdue",
            "time() - max by (kind, namespace, name) "
            f"(riskgate_operator_next_rotation_timestamp_seconds) > {overdue}",
            for_="5m",
            severity="warning",
            summary="Credential rotation is overdue",
            description=(
                "The credentials of {{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.name }} "
                f"were due for rotation more than {overdue // 60} minutes ago and have not rotated."
            ),
        ),
    ]


def _fraud_alerts(config: Config) -> list[Rule]:
    w, base = config.fraud_window, config.fraud_baseline
    factor = f"{config.fraud_factor:g}"
    return [
        alert(
            "RiskgateFraudFlagsSpike",
            f"sum by ({BY}) (rate(fraud_alerts_total[{w}]))\n"
            f"> {factor} * sum by ({BY}) (rate(fraud_alerts_total[{base}]))\n"
            f"and\nsum by ({BY}) (increase(fraud_alerts_total[{w}])) >= {config.fraud_min_flags}",
            for_="10m",
            severity="warning",
            summary="Transactions are flagged for fraud far more often than usual",
            description=(
                f"Over the last {w} transactions were flagged for fraud at more than {factor} "
                f"times their {base} rate, for 10 minutes: an attack, or a threshold or data "
                "problem upstream."
            ),
        ),
    ]


def alert_groups(config: Config) -> list[Group]:
    return [
        {"name": "riskgate-webhooks", "rules": _webhook_alerts(config)},
        {"name": "riskgate-dependencies", "rules": _dependency_alerts(config)},
        {"name": "riskgate-operator", "rules": _operator_alerts(config)},
        {"name": "riskgate-fraud", "rules": _fraud_alerts(config)},
    ]

"""Grafana dashboards, built with grafana-foundation-sdk (the Grafana 11.6 build).

Every query goes to the templated ``$datasource`` (no datasource ids) and filters on the
``$namespace`` and ``$job`` variables; ``All`` means ``.*``, so a Prometheus without those
labels (a plain scrape config) still matches. SLO panels read the recording rules of
``dashboards/rules/slo.yaml``, so a dashboard and its alerts can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import dashboard as grafana
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

from dashboards.config import LATENCY_THRESHOLD, PROBE_ROUTES, Config
from dashboards.promrules import BUDGET_REMAINING, OBJECTIVE, burn_rate, errors_ratio

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SCOPE = 'namespace=~"$namespace", job=~"$job"'
"""The label matchers every raw-metric query carries."""
RATE = "$__rate_interval"
TAGS = ["riskgate"]

Panel = grafana.Panel | timeseries.Panel | stat.Panel


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    return query.legend_format(legend) if legend else query


def graph(
    title: str,
    *queries: prometheus.Dataquery,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    threshold: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(width)
        .targets(list(_refs(queries)))
    )
    if description:
        panel = panel.description(description)
    if threshold is not None:
        panel = panel.thresholds(_red_above(threshold)).thresholds_style(
            _dashed_line()  # the target drawn as a line across the graph
        )
    return panel


def single(
    title: str,
    *queries: prometheus.Dataquery,
    unit: str,
    description: str,
    red_below: float | None = None,
    width: int = 6,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .decimals(3)
        .height(8)
        .span(width)
        .targets([query.instant() for query in _refs(queries)])
    )
    if red_below is not None:
        steps = [Threshold(color="red", value=None), Threshold(color="green", value=red_below)]
        panel = panel.thresholds(
            grafana.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
        )
    return panel


def _refs(queries: tuple[prometheus.Dataquery, ...]) -> list[prometheus.Dataquery]:
    return [query.ref_id(chr(ord("A") + i)) for i, query in enumerate(queries)]


def _red_above(value: float) -> grafana.ThresholdsConfig:
    steps = [Threshold(color="green", value=None), Threshold(color="red", value=value)]
    return grafana.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def _dashed_line() -> GraphThresholdsStyleConfig:
    return GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)


def rate(selector: str, by: str = "", window: str = RATE, fn: str = "rate") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}({fn}({selector}[{window}]))"


def hourly(selector: str, by: str = "") -> str:
    """Events in the last hour: for rare ones (dead letters, disabled subscriptions)."""
    return rate(selector, by, window="1h", fn="increase")


def scoped(metric: str, matchers: str = "") -> str:
    return f"{metric}{{{SCOPE}{', ' + matchers if matchers else ''}}}"


def quantiles(histogram: str, matchers: str = "", by: str = "") -> list[prometheus.Dataquery]:
    buckets = rate(scoped(f"{histogram}_bucket", matchers), by=f"le{', ' + by if by else ''}")
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        q(f"histogram_quantile({p}, {buckets})", f"p{int(p * 100)}{suffix}")
        for p in (0.5, 0.95, 0.99)
    ]


# --- variables ---------------------------------------------------------------------------------


def variables(metric: str) -> list[Any]:
    """Data source, namespace and job pickers; ``metric`` is one every process here exports."""
    datasource = grafana.DatasourceVariable("datasource").label("Data source").type("prometheus")
    return [datasource, _label_variable("namespace", metric), _label_variable("job", metric)]


def _label_variable(label: str, metric: str) -> grafana.QueryVariable:
    selector = "" if label == "namespace" else '{namespace=~"$namespace"}'
    return (
        grafana.QueryVariable(label)
        .label(label.capitalize())
        .datasource(DATASOURCE)
        .query(f"label_values({metric}{selector}, {label})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def board(
    uid: str, title: str, description: str, panels: list[Panel], metric: str = "riskgate_build_info"
) -> dict[str, Any]:
    """``metric``: one that every process the dashboard shows exports, for the variables."""
    builder = (
        grafana.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .variables(variables(metric))
    )
    for panel_id, panel in enumerate(panels, start=1):
        builder = builder.with_panel(panel.id(panel_id))
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


# --- the dashboards ----------------------------------------------------------------------------

NS = 'namespace=~"$namespace"'
HOLD = 'action="hold"'
SUCCEEDED = 'outcome="succeeded"'
EXHAUSTED = 'outcome="exhausted"'
USER_ROUTES = f'route!~"{PROBE_ROUTES}"'


def slo_overview(config: Config) -> dict[str, Any]:
    panels: list[Panel] = []
    for slo in config.slos:
        sel = f'{{{NS}, slo="{slo.name}"}}'
        panels += [
            single(
                f"{slo.title}: SLI over {config.period}",
                q(f"1 - {errors_ratio(config.period)}{sel}", "{{namespace}}"),
                q(f'{OBJECTIVE}{{slo="{slo.name}"}}', "objective"),
                unit="percentunit",
                description="Share of good events over the SLO period, beside the objective "
                f"(red below the default, {slo.objective}).",
                red_below=slo.objective,
            ),
            single(
                f"{slo.title}: error budget remaining",
                q(f"{BUDGET_REMAINING}{sel}", "{{namespace}}"),
                unit="percentunit",
                description="1 = untouched, 0 = spent, below 0 = SLO missed for the period.",
                red_below=0.0,
            ),
            graph(
                f"{slo.title}: burn rate",
                *[q(f"{burn_rate(w)}{sel}", f"{w} {{{{namespace}}}}") for w in config.windows],
                description="1 spends the budget exactly over the period; pages start at "
                f"{max(t.factor for t in config.tiers):g}.",
                threshold=1.0,
            ),
        ]
    panels += [
        graph(
            "SLIs against their objectives (1h)",
            q(f"1 - {errors_ratio('1h')}{{{NS}}}", "{{slo}} {{namespace}}"),
            q(f'{OBJECTIVE}{{slo=~".+"}}', "{{slo}} objective"),
            unit="percentunit",
        ),
        graph(
            f"API latency against the {LATENCY_THRESHOLD} s target",
            *quantiles("riskgate_http_request_duration_seconds", USER_ROUTES),
            unit="s",
            threshold=float(LATENCY_THRESHOLD),
        ),
        graph(
            "API requests by route and status",
            q(
                rate(scoped("riskgate_http_requests_total", USER_ROUTES), "route, status"),
                "{{route}} {{status}}",
            ),
            unit="reqps",
            width=24,
        ),
    ]
    return board(
        "riskgate-slo",
        "riskgate / SLO overview",
        "Availability, latency and webhook delivery SLOs: SLIs, error budget and burn rates.",
        panels,
    )


def decisions(config: Config) -> dict[str, Any]:
    decided = "riskgate_decisions_total"
    panels: list[Panel] = [
        graph(
            "Decisions by action",
            q(rate(scoped(decided, 'mode="active"'), "action"), "{{action}}"),
            unit="ops",
        ),
        graph(
            "Decisions by score version and mode",
            q(rate(scoped(decided), "score_version, mode"), "{{score_version}} {{mode}}"),
            unit="ops",
            description="Shadow rule versions are scored beside the active one, never returned.",
        ),
        graph(
            "Shadow against active: share of holds",
            q(
                f"{rate(scoped(decided, HOLD), 'mode')}\n/ {rate(scoped(decided), 'mode')}",
                "{{mode}}",
            ),
            unit="percentunit",
            description="How differently a shadow version would decide, as its hold share.",
        ),
        graph(
            "Fraud flags",
            q(rate(scoped("fraud_alerts_total")), "flags/s"),
            unit="ops",
            description=f"The {config.fraud_window} rate against {config.fraud_factor:g}x "
            f"the {config.fraud_baseline} rate is what RiskgateFraudFlagsSpike watches.",
        ),
        graph(
            "Idempotency outcomes",
            q(rate(scoped("riskgate_idempotency_requests_total"), "outcome"), "{{outcome}}"),
            unit="ops",
        ),
        graph(
            "Rate-limited requests by policy",
            q(rate(scoped("riskgate_rate_limited_requests_total"), "policy"), "{{policy}}"),
            unit="reqps",
        ),
    ]
    return board(
        "riskgate-decisions",
        "riskgate / Decisions and fraud",
        "Risk decisions by action and score version, fraud flags, idempotency and rate limits.",
        panels,
    )


def transactions(config: Config) -> dict[str, Any]:
    tx = "riskgate_transactions_total"
    panels: list[Panel] = [
        graph("Transactions by status", q(rate(scoped(tx), "status"), "{{status}}"), unit="ops"),
        graph(
            "Share of transactions by status",
            q(
                f"{rate(scoped(tx), 'status')}\n/ ignoring (status) group_left\n{rate(scoped(tx))}",
                "{{status}}",
            ),
            unit="percentunit",
        ),
    ]
    return board(
        "riskgate-transactions",
        "riskgate / Transactions",
        "Money transactions by resulting status (approved, declined, flagged for fraud).",
        panels,
    )


def webhooks(config: Config) -> dict[str, Any]:
    attempts = "riskgate_webhook_deliveries_total"
    panels: list[Panel] = [
        graph(
            "Delivery success rate",
            q(f"{rate(scoped(attempts, SUCCEEDED))}\n/ {rate(scoped(attempts))}", "success"),
            unit="percentunit",
        ),
        graph(
            "Delivery attempts by outcome",
            q(rate(scoped(attempts), "outcome"), "{{outcome}}"),
            unit="ops",
        ),
        graph(
            "Failed attempts by error class",
            q(
                rate(scoped("riskgate_webhook_delivery_errors_total"), "error_class"),
                "{{error_class}}",
            ),
            unit="ops",
        ),
        graph(
            "Retries",
            q(rate(scoped("riskgate_webhook_retries_total")), "retries/s"),
            unit="ops",
        ),
        graph(
            "Backlog",
            q(f"max by (queue) ({scoped('riskgate_webhook_backlog')})", "{{queue}}"),
            description="Undispatched outbox rows and due, unclaimed deliveries.",
        ),
        graph(
            "Oldest pending age",
            q(
                f"max by (queue) ({scoped('riskgate_webhook_backlog_oldest_age_seconds')})",
                "{{queue}}",
            ),
            unit="s",
            threshold=float(config.webhook_backlog_age_seconds),
        ),
        graph(
            "Lag from commit to delivery",
            *quantiles("riskgate_webhook_delivery_lag_seconds"),
            unit="s",
        ),
        graph(
            "Attempt duration",
            *quantiles("riskgate_webhook_delivery_duration_seconds", by="outcome"),
            unit="s",
        ),
        graph(
            "Dead letters (deliveries out of retries)",
            q(hourly(scoped(attempts, EXHAUSTED)), "per hour"),
            description="Replay them with POST /v1/webhooks/deliveries/{id}/replay.",
        ),
        graph(
            "Subscriptions disabled",
            q(
                hourly(scoped("riskgate_webhook_subscriptions_disabled_total"), "reason"),
                "{{reason}} per hour",
            ),
        ),
    ]
    return board(
        "riskgate-webhooks",
        "riskgate / Webhooks",
        "Webhook delivery: success, retries, backlog and its age, lag, dead letters.",
        panels,
    )


def operator(config: Config) -> dict[str, Any]:
    reconciles = "riskgate_operator_reconciles_total"
    # The next-rotation gauge's own `namespace` label is the resource's namespace, so it is
    # filtered by job only.
    due = 'riskgate_operator_next_rotation_timestamp_seconds{job=~"$job"}'
    panels: list[Panel] = [
        graph(
            "Reconciles by kind and result",
            q(rate(scoped(reconciles), "kind, result"), "{{kind}} {{result}}"),
            unit="ops",
        ),
        graph(
            "Reconcile errors by kind",
            q(rate(scoped(reconciles, 'result!="success"'), "kind, result"), "{{kind}} {{result}}"),
            unit="ops",
        ),
        graph(
            "Sync errors by class",
            q(
                rate(scoped("riskgate_operator_sync_errors_total"), "kind, class"),
                "{{kind}} {{class}}",
            ),
            unit="ops",
        ),
        graph(
            "Credential rotations by trigger",
            q(
                hourly(scoped("riskgate_operator_rotations_total"), "kind, trigger"),
                "{{kind}} {{trigger}} per hour",
            ),
        ),
        graph(
            "Time to next rotation",
            q(f"{due} - time()", "{{kind}} {{namespace}}/{{name}}"),
            unit="s",
            description="Below zero: overdue; RiskgateSecretRotationOverdue fires past "
            f"-{config.rotation_overdue_seconds} s.",
        ),
        graph(
            "Managed resources",
            q(f"sum by (kind) ({scoped('riskgate_operator_managed_resources')})", "{{kind}}"),
        ),
    ]
    return board(
        "riskgate-operator",
        "riskgate / Operator",
        "The riskgate operator: reconciles, errors, credential rotations and managed resources.",
        panels,
        metric="riskgate_operator_managed_resources",
    )


def dependencies(config: Config) -> dict[str, Any]:
    panels: list[Panel] = [
        graph(
            "PostgreSQL unavailable, as the service sees it",
            q(
                rate(scoped("riskgate_postgres_unavailable_total"), "job, operation"),
                "{{job}} {{operation}}",
            ),
            unit="ops",
            description="API requests answered 503, and worker steps that waited, because "
            "PostgreSQL did not answer.",
        ),
        graph(
            "Redis unavailable (fail-open fallbacks)",
            q(
                rate(scoped("riskgate_redis_unavailable_total"), "job, operation"),
                "{{job}} {{operation}}",
            ),
            unit="ops",
        ),
        graph(
            "Readiness answers by status",
            q(
                rate(scoped("riskgate_http_requests_total", 'route="/v1/health/ready"'), "status"),
                "{{status}}",
            ),
            unit="reqps",
            description="503: the API cannot reach PostgreSQL and its pods leave the Service.",
        ),
        graph(
            "Scrape targets up",
            q(f"up{{{SCOPE}}}", "{{job}} {{instance}}"),
            description="0: Prometheus cannot scrape the process (RiskgateTargetDown).",
        ),
    ]
    return board(
        "riskgate-dependencies",
        "riskgate / Dependencies",
        "PostgreSQL and Redis as riskgate sees them, and whether Prometheus sees riskgate.",
        panels,
    )


BOARDS: dict[str, Callable[[Config], dict[str, Any]]] = {
    "slo-overview": slo_overview,
    "decisions": decisions,
    "transactions": transactions,
    "webhooks": webhooks,
    "operator": operator,
    "dependencies": dependencies,
}


def all_dashboards(config: Config) -> dict[str, dict[str, Any]]:
    return {name: build(config) for name, build in BOARDS.items()}

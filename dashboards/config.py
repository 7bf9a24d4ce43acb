"""The knobs: SLO objectives, burn-rate windows, alert thresholds, selectors.

Change a value here, run ``python -m dashboards`` and commit the regenerated files. The SLO
objectives are only defaults: the chart overrides them at install time (``docs/slos.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

RUNBOOK_URL = "https://riskgate.io/docs/runbook"
"""Where ``docs/runbook.md`` is published; each alert links to its own section (``#<alert>``)."""

PROBE_ROUTES = "/metrics|/v1/health|/v1/health/ready"
"""Routes that kubelet and Prometheus call: they are not user traffic and no SLO counts them."""

LATENCY_THRESHOLD = "0.45"
"""The latency SLO's bucket boundary, as the exposition spells it (``le="0.45"``)."""


@dataclass(frozen=True)
class Slo:
    """One SLO over counters: ``total`` events, of which ``errors`` are bad, or else all but
    ``good`` are (a histogram bucket counts the good ones, not the bad)."""

    name: str
    title: str
    objective: float
    total: str
    alert: str
    meaning: str
    errors: str = ""
    good: str = ""


@dataclass(frozen=True)
class BurnTier:
    """Alert when the error budget burns faster than ``factor`` over both windows."""

    severity: str
    long_window: str
    short_window: str
    factor: float
    for_: str


@dataclass(frozen=True)
class Config:
    period: str = "30d"
    """The SLO period the objectives are stated over (error budget remaining is over it too)."""
    tiers: tuple[BurnTier, ...] = (
        # Google SRE workbook, chapter 5, "multiwindow, multi-burn-rate alerts".
        BurnTier("critical", "1h", "5m", 14.4, "2m"),  # 2 % of the budget in an hour: page
        BurnTier("critical", "6h", "30m", 6.0, "15m"),  # 5 % in six hours: page
        BurnTier("warning", "3d", "6h", 1.0, "1h"),  # on course to spend it all: ticket
    )
    slos: tuple[Slo, ...] = field(default_factory=lambda: SLOS)
    webhook_backlog_age_seconds: int = 300
    """Matches the worker's ``RISKGATE_BACKLOG_UNREADY_SECONDS`` default."""
    rotation_overdue_seconds: int = 1800
    fraud_window: str = "15m"
    fraud_baseline: str = "1d"
    fraud_factor: float = 3.0
    fraud_min_flags: int = 5
    """Below this many flags in ``fraud_window`` nothing is a spike, whatever the baseline."""
    target_jobs: str = ".*riskgate.*"
    """``up{job=~...}``: the scrape jobs of the API, worker and operator."""

    @property
    def windows(self) -> tuple[str, ...]:
        """Every window an SLI is recorded over, shortest first."""
        names = {self.period} | {w for t in self.tiers for w in (t.long_window, t.short_window)}
        return tuple(sorted(names, key=seconds))


_HTTP = f'riskgate_http_requests_total{{route!~"{PROBE_ROUTES}"}}'
_DURATION = "riskgate_http_request_duration_seconds"

SLOS: tuple[Slo, ...] = (
    Slo(
        name="availability",
        title="Availability",
        objective=0.999,
        errors=f'riskgate_http_requests_total{{route!~"{PROBE_ROUTES}", status=~"5.."}}',
        total=_HTTP,
        alert="RiskgateAvailabilityErrorBudgetBurn",
        meaning="API requests are failing with 5xx",
    ),
    Slo(
        name="latency",
        title="Latency",
        # DESIGN: p95 <= 450 ms, i.e. 95 % of requests faster than the 0.45 s bucket.
        objective=0.95,
        total=f'{_DURATION}_count{{route!~"{PROBE_ROUTES}"}}',
        good=f'{_DURATION}_bucket{{route!~"{PROBE_ROUTES}", le="{LATENCY_THRESHOLD}"}}',
        alert="RiskgateLatencyErrorBudgetBurn",
        meaning="API requests are slower than 0.45 s",
    ),
    Slo(
        name="webhook_delivery",
        title="Webhook delivery",
        objective=0.999,
        errors='riskgate_webhook_deliveries_total{outcome!="succeeded"}',
        total="riskgate_webhook_deliveries_total",
        alert="RiskgateWebhookDeliveryErrorBudgetBurn",
        meaning="webhook delivery attempts are failing",
    ),
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(duration: str) -> int:
    """``"6h"`` -> 21600: Prometheus durations of one unit, enough for our windows."""
    return int(duration[:-1]) * _UNITS[duration[-1]]


DEFAULT = Config()

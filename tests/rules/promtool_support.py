"""Build ``promtool test rules`` files from Python: input series as piecewise-linear counters,
expected alerts with the annotations their rule renders for those labels."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from monitoring_support import shipped_groups, tool


def counter(*segments: tuple[int, float], start: float = 0) -> str:
    """promtool's expanding notation for a counter that grows by ``step`` per sample for
    ``samples`` samples, segment after segment: ``counter((60, 100), (30, 90))``."""
    parts, value = [], start
    for index, (samples, step) in enumerate(segments):
        first = value if index == 0 else value + step
        count = samples if index == 0 else samples - 1
        parts.append(f"{_num(first)}+{_num(step)}x{count}")
        value = first + step * count
    return " ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@cache
def alert_rules() -> dict[str, list[dict[str, Any]]]:
    """Every alerting rule in the shipped rule files, by alert name."""
    found: dict[str, list[dict[str, Any]]] = {}
    for group in shipped_groups().values():
        for rule in group["rules"]:
            if "alert" in rule:
                found.setdefault(rule["alert"], []).append(rule)
    return found


_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def expected(alert: str, **labels: str) -> dict[str, Any]:
    """The expected firing alert: its rule's labels plus ``labels``, annotations rendered.

    An alert name with several rules (the burn-rate tiers) is told apart by ``long_window``.
    """
    rules = alert_rules()[alert]
    if len(rules) > 1:
        rules = [r for r in rules if r["labels"].get("long_window") == labels.get("long_window")]
    (rule,) = rules
    all_labels = {**rule["labels"], **labels}

    def render(text: str) -> str:
        return _LABEL.sub(lambda m: all_labels.get(m.group(1), ""), text)

    annotations = {k: render(v) for k, v in rule["annotations"].items()}
    return {"exp_labels": all_labels, "exp_annotations": annotations}


@dataclass
class Case:
    """One promtool test group: series, and the alerts expected at given minutes."""

    name: str
    series: dict[str, str]
    alerts: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    interval: str = "1m"

    def at(self, minute: int, alert: str, *firing: dict[str, Any]) -> Case:
        self.alerts[(alert, minute)] = list(firing)
        return self

    def to_promtool(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": self.interval,
            "input_series": [{"series": s, "values": v} for s, v in self.series.items()],
            "alert_rule_test": [
                {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": firing}
                for (alert, minute), firing in sorted(self.alerts.items(), key=lambda i: i[0][1])
            ],
        }


def run_promtool_tests(
    cases: Sequence[Case], directory: Path, groups: Sequence[str], interval: str = "1m"
) -> str:
    """Run ``cases`` with promtool against the shipped ``groups`` (promtool evaluates every
    loaded rule at every step, so loading only the groups under test keeps it fast)."""
    shipped = shipped_groups()
    rules = directory / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [shipped[name] for name in groups]}))
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": interval,
        "tests": [c.to_promtool() for c in cases],
    }
    path = directory / "rules.test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout

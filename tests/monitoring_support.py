"""The shipped rule files and dashboards as tests read them, and the Prometheus tools."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "dashboards" / "rules").glob("*.yaml"))
BOARDS = sorted((ROOT / "dashboards" / "grafana").glob("*.json"))


@cache
def tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``: the project's script installs the pinned
    version when missing, and refuses another one."""
    script = ROOT / "scripts" / "install-monitoring-tools"
    result = subprocess.run([script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return str(Path(result.stdout.strip()) / name)


def shipped_groups() -> dict[str, dict[str, Any]]:
    """Every rule group of the shipped files, by name, exactly as shipped."""
    return {
        group["name"]: group
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
    }


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for group in shipped_groups().values()
        for rule in group["rules"]
        if "record" in rule
    }


def _operator_metrics() -> frozenset[str]:
    """The series names the operator exposes, from its own registry (the operator process is
    not part of the Prometheus test; its metrics module is the same code)."""
    from riskgate_operator.metrics import REGISTRY as OPERATOR_REGISTRY

    return frozenset(
        family.name + ("_total" if family.type == "counter" else "")
        for family in OPERATOR_REGISTRY.collect()
    )


OPERATOR_METRICS = _operator_metrics()
PROMETHEUS_METRICS = frozenset({"up"})
"""Series Prometheus itself writes for every target."""

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in BOARDS}


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in dashboards().items():
        for panel in board["panels"]:
            yield name, panel


def queries() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dashboard, panel title, target) for every query of every panel."""
    for name, panel in panels():
        for target in panel.get("targets", []):
            yield name, panel["title"], target


_LABEL_VALUES = re.compile(r"^label_values\((.+), (\w+)\)$")


def variable_queries() -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """(dashboard, {variable: (series selector, label)}) for each ``label_values`` variable."""
    for name, board in dashboards().items():
        found = {}
        for variable in board["templating"]["list"]:
            match = _LABEL_VALUES.match(str(variable.get("query", "")))
            if match:
                found[variable["name"]] = (match.group(1), match.group(2))
        yield name, found


def metric_names(expr: str) -> set[str]:
    """Metric names in ``expr``: every selector in our dashboards carries label matchers."""
    return set(_SELECTOR.findall(expr))


def legend_labels(target: dict[str, Any]) -> set[str]:
    """The labels a query's legend shows: each series it returns must carry them."""
    return set(_LEGEND_LABEL.findall(target.get("legendFormat", "")))


def is_recording_rule(name: str) -> bool:
    return ":" in name

"""Grafana dashboards (placeholder until the dashboards land)."""

from __future__ import annotations

from typing import Any

from dashboards.config import Config


def all_dashboards(config: Config) -> dict[str, dict[str, Any]]:
    return {}

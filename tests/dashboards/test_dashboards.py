"""The committed Grafana dashboards: valid for the pinned SDK's schema, every panel titled and
queried, data sources templated, and every recording rule they read defined."""

from __future__ import annotations

import json

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from monitoring_support import (
    dashboards,
    is_recording_rule,
    metric_names,
    panels,
    queries,
    recorded_names,
)

TEMPLATED = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED = {"slo-overview", "decisions", "transactions", "webhooks", "operator", "dependencies"}


def test_every_dashboard_is_there_with_a_unique_uid() -> None:
    assert set(dashboards()) == EXPECTED
    uids = [board["uid"] for board in dashboards().values()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_round_trips_through_the_pinned_sdk_models(name: str) -> None:
    board = dashboards()[name]
    model = Dashboard.from_json(board)
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == board
    assert board["schemaVersion"] == Dashboard().schema_version == 41  # Grafana 11.6


def test_every_panel_has_a_title_and_a_query() -> None:
    for name, panel in panels():
        assert panel.get("title"), f"{name}: a panel without a title"
        exprs = [t.get("expr", "").strip() for t in panel.get("targets", [])]
        assert exprs, f"{name}/{panel['title']}: a panel without a query"
        assert all(exprs), f"{name}/{panel['title']}: an empty query"


def test_every_query_uses_the_templated_datasource() -> None:
    for name, panel in panels():
        assert panel["datasource"] == TEMPLATED, f"{name}/{panel['title']}"
        for target in panel["targets"]:
            assert target["datasource"] == TEMPLATED, f"{name}/{panel['title']}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_datasource_namespace_and_job_variables(name: str) -> None:
    variables = {v["name"]: v for v in dashboards()[name]["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "job"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for label in ("namespace", "job"):
        assert variables[label]["datasource"] == TEMPLATED
        assert variables[label]["allValue"] == ".*"


def test_every_raw_metric_query_is_scoped_to_the_variables() -> None:
    for name, title, target in queries():
        for metric in metric_names(target["expr"]) - {"riskgate:slo_objective:ratio"}:
            needle = "namespace=~" if is_recording_rule(metric) else "job=~"
            assert needle in target["expr"], (name, title, metric)


def test_every_recording_rule_a_dashboard_reads_is_defined() -> None:
    recorded = recorded_names()
    used = {m for _, _, t in queries() for m in metric_names(t["expr"]) if is_recording_rule(m)}
    assert used, "the SLO overview reads recording rules"
    assert used <= recorded, used - recorded

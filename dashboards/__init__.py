"""riskgate's Prometheus rules and Grafana dashboards, as code.

``python -m dashboards`` writes ``dashboards/rules/*.yaml`` (Prometheus rule files) and
``dashboards/grafana/*.json`` (Grafana dashboards) from the definitions in this package;
``python -m dashboards --check`` exits 1 when the committed files differ from what the code
generates. The Helm chart ships both directories as they are; only the SLO objectives group is
templated from the chart's values, so targets change without regenerating anything.
"""

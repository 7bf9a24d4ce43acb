"""The Helm chart: lint, render with every value set, validate strictly, check invariants."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml
from k8s_support import (
    CHART,
    K8S_VERSIONS,
    ROOT,
    VALUE_SETS,
    Doc,
    ToolError,
    assert_locked_down,
    containers,
    is_custom,
    named,
    of_kind,
    pod_spec,
    render,
    run_tool,
    validate_builtin,
    workloads,
)

MINIMAL = CHART / "ci" / "minimal-values.yaml"
DEV = CHART / "ci" / "in-cluster-databases-values.yaml"
ids = [p.name.removesuffix("-values.yaml") for p in VALUE_SETS]
VERSION_LABELS = {"helm.sh/chart", "app.kubernetes.io/version"}


@pytest.mark.parametrize("values", VALUE_SETS, ids=ids)
def test_lint_strict(values: Path) -> None:
    run_tool("helm", "lint", "--strict", CHART, "-f", values)


@pytest.mark.parametrize("values", VALUE_SETS, ids=ids)
def test_every_object_validates_for_oldest_and_newest_kubernetes(values: Path) -> None:
    docs = render(values)
    assert validate_builtin(docs) == len([d for d in docs if not is_custom(d)]) > 5


def test_validation_covers_the_supported_kubernetes_range() -> None:
    import kubernetes_validate.utils

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={K8S_VERSIONS[0]}-0"
    assert kubernetes_validate.utils.latest_version() == K8S_VERSIONS[-1]


def test_strict_validation_refuses_an_unknown_field() -> None:
    broken = copy.deepcopy(named(render(MINIMAL), "Deployment", "-api"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(pytest.fail.Exception, match="readinesProbe"):
        validate_builtin([broken])


@pytest.mark.parametrize("values", VALUE_SETS, ids=ids)
def test_every_workload_is_locked_down(values: Path) -> None:
    for doc in workloads(render(values)):
        assert_locked_down(doc)


@pytest.mark.parametrize("values", VALUE_SETS, ids=ids)
def test_only_the_operator_gets_a_service_account_token(values: Path) -> None:
    for doc in workloads(render(values)):
        token = pod_spec(doc)["automountServiceAccountToken"]
        assert token is (doc["metadata"]["name"].endswith("-operator")), doc["metadata"]["name"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=ids)
def test_deployments_have_probes_and_stable_selectors(values: Path) -> None:
    docs = render(values)
    for doc in of_kind(docs, "Deployment"):
        selector = doc["spec"]["selector"]["matchLabels"]
        template_labels = doc["spec"]["template"]["metadata"]["labels"]
        assert not VERSION_LABELS & selector.keys(), doc["metadata"]["name"]
        assert selector.items() <= template_labels.items()
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance"} <= selector.keys()
        assert {"app.kubernetes.io/part-of", "helm.sh/chart"} <= doc["metadata"]["labels"].keys()
        for container in containers(doc):
            assert container["livenessProbe"]
            assert container["readinessProbe"]
    for service in of_kind(docs, "Service"):
        targets = [d for d in of_kind(docs, "Deployment") if _selects(service, d)]
        assert len(targets) == 1, service["metadata"]["name"]


def _selects(service: Doc, deployment: Doc) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(service["spec"]["selector"].items() <= labels.items())


def _probe(doc: Doc, kind: str) -> tuple[str, str]:
    get = containers(doc)[0][kind]["httpGet"]
    return get["path"], get["port"]


def test_probes_use_each_process_own_health_endpoints() -> None:
    docs = render(MINIMAL)
    api, worker = named(docs, "Deployment", "-api"), named(docs, "Deployment", "-worker")
    operator = named(docs, "Deployment", "-operator")
    assert _probe(api, "livenessProbe") == ("/v1/health", "http")
    assert _probe(api, "readinessProbe") == ("/v1/health/ready", "http")
    assert _probe(worker, "readinessProbe") == ("/v1/health/ready", "metrics")
    assert _probe(operator, "livenessProbe") == ("/healthz", "metrics")
    ports = {c["ports"][0]["containerPort"] for d in (api, worker, operator) for c in containers(d)}
    assert ports == {8000, 8081, 8080}


def _env(container: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in container.get("env", [])}


def test_processes_bind_all_interfaces_and_run_their_own_verb() -> None:
    docs = render(MINIMAL)
    config = named(docs, "ConfigMap", "riskgate")["data"]
    assert config["RISKGATE_HOST"] == "0.0.0.0"
    assert config["RISKGATE_MODE"] == "production"
    verbs = {d["metadata"]["name"]: containers(d)[0]["args"] for d in of_kind(docs, "Deployment")}
    assert verbs == {
        "riskgate-api": ["api"],
        "riskgate-worker": ["worker"],
        "riskgate-operator": ["operator"],
    }
    (api,) = containers(named(docs, "Deployment", "-api"))
    mounts = {m["mountPath"] for m in api["volumeMounts"]}
    assert _env(api)["PROMETHEUS_MULTIPROC_DIR"]["value"] in mounts
    assert "/tmp" in mounts


def test_operator_is_a_single_recreated_replica_with_its_settings() -> None:
    docs = render(MINIMAL)
    operator = named(docs, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    env = _env(containers(operator)[0])
    assert env["RISKGATE_OPERATOR_API_URL"]["value"] == "http://riskgate-api:8000"
    assert env["RISKGATE_OPERATOR_NAMESPACES"]["value"] == ""
    assert env["RISKGATE_OPERATOR_PORT"]["value"] == "8080"
    # Written into ApiClient Secrets: workloads in other namespaces need the namespaced name.
    workload_url = env["RISKGATE_OPERATOR_WORKLOAD_API_URL"]["value"]
    assert workload_url == "http://riskgate-api.riskgate.svc:8000"
    mine = render(MINIMAL, sets=["operator.workloadApiUrl=https://riskgate.example.com"])
    mine_env = _env(containers(named(mine, "Deployment", "-operator"))[0])
    assert mine_env["RISKGATE_OPERATOR_WORKLOAD_API_URL"]["value"] == "https://riskgate.example.com"
    assert {
        "RISKGATE_OPERATOR_CLIENT_ID_FILE",
        "RISKGATE_OPERATOR_CLIENT_SECRET_FILE",
    } <= env.keys()


def test_migration_hook_runs_migrate_then_ensures_the_clients() -> None:
    job = named(render(CHART / "ci" / "external-secrets-values.yaml"), "Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = pod_spec(job)
    (migrate,) = spec["initContainers"]
    assert migrate["args"] == ["migrate"]
    owner = _env(migrate)["RISKGATE_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert owner == {"name": "riskgate-database", "key": "migration-database-url"}
    ensured = {c["args"][3]: c["args"][5] for c in spec["containers"]}
    assert ensured == {
        "riskgate-operator": "subscriptions:sync clients:admin",
        "checkout": "score:write events:read",
    }
    assert all(c["args"][:2] == ["clients", "ensure"] for c in spec["containers"])


def _hook(doc: Doc) -> tuple[str, int]:
    annotations = doc["metadata"].get("annotations", {})
    return annotations.get("helm.sh/hook", ""), int(annotations.get("helm.sh/hook-weight", 0))


def test_in_cluster_databases_come_up_before_the_first_migration() -> None:
    docs = render(DEV)
    job = named(docs, "Job", "-migrate")
    assert _hook(job) == ("pre-install,pre-upgrade", 0)
    assert [c["name"] for c in pod_spec(job)["initContainers"]] == [
        "wait-for-postgresql",
        "migrate",
    ]
    databases = [
        d
        for d in docs
        if d["metadata"]["labels"]["app.kubernetes.io/component"]
        in {"postgresql", "redis", "dev-databases"}
    ]
    assert {d["kind"] for d in databases} >= {"Deployment", "Service", "Secret", "ConfigMap"}
    # Created before everything on install; never replaced by an upgrade (their data stays).
    assert {_hook(d) for d in databases} == {("pre-install", -20)}
    assert {_hook(d) for d in of_kind(docs, "Secret") if d not in databases} == {
        ("pre-install,pre-upgrade", -10)
    }
    assert "riskgate-dev-databases" in str(named(docs, "Deployment", "-api"))


def test_database_and_redis_secrets_are_required_outside_dev() -> None:
    with pytest.raises(ToolError, match=r"database\.existingSecret is required"):
        render()


def test_schema_rejects_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(ToolError, match="additional properties 'replcas' not allowed"):
        render(MINIMAL, sets=["api.replcas=3"])
    with pytest.raises(ToolError, match="/api/replicas"):
        render(MINIMAL, sets=["api.replicas=two"])
    with pytest.raises(ToolError, match="/bootstrapClients/0/name"):
        render(
            MINIMAL, sets=["bootstrapClients[0].name=Bad Name", "bootstrapClients[0].scopes=a:b"]
        )
    with pytest.raises(ToolError, match="readOnlyRootFilesystem"):
        render(MINIMAL, sets=["securityContext.readOnlyRootFilesystem=false"])


def test_config_cannot_override_what_the_probes_depend_on() -> None:
    with pytest.raises(ToolError, match=r"config\.RISKGATE_PORT is set by the chart"):
        render(MINIMAL, sets=["config.RISKGATE_PORT=9000"])
    config = named(
        render(MINIMAL, sets=["config.RISKGATE_RATE_LIMIT=5/1s"]), "ConfigMap", "riskgate"
    )
    assert config["data"]["RISKGATE_RATE_LIMIT"] == "5/1s"


def _undocumented(schema: Doc, values: Doc, path: str = "") -> list[str]:
    """Schema properties with no default in values.yaml (where users look for settings)."""
    missing = []
    for key, sub in schema.get("properties", {}).items():
        if key in {"global", "resources"}:  # Helm's own; Kubernetes' ResourceRequirements
            continue
        if key not in values:
            missing.append(f"{path}{key}")
        elif isinstance(values[key], dict) and sub.get("additionalProperties") is False:
            missing += _undocumented(sub, values[key], f"{path}{key}.")
    return missing


def test_every_setting_in_the_schema_has_a_default_in_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _undocumented(schema, values) == []


def test_resources_and_image_are_settable() -> None:
    digest = "sha256:" + "a" * 64
    docs = render(MINIMAL, sets=["api.resources.limits.cpu=2", f"image.digest={digest}"])
    (api,) = containers(named(docs, "Deployment", "-api"))
    assert api["resources"]["limits"] == {"cpu": 2, "memory": "512Mi"}
    assert all(c["image"] == f"riskgate@{digest}" for d in workloads(docs) for c in containers(d))


def test_scheduling_and_pull_secrets_are_settable_per_component() -> None:
    docs = render(
        MINIMAL,
        sets=[
            "imagePullSecrets[0].name=registry",
            "worker.nodeSelector.pool=batch",
            "operator.tolerations[0].key=dedicated",
            "operator.tolerations[0].operator=Exists",
        ],
    )
    assert validate_builtin(docs)
    for doc in workloads(docs):
        assert pod_spec(doc)["imagePullSecrets"] == [{"name": "registry"}], doc["metadata"]["name"]
    assert pod_spec(named(docs, "Deployment", "-worker"))["nodeSelector"] == {"pool": "batch"}
    assert "nodeSelector" not in pod_spec(named(docs, "Deployment", "-api"))
    operator = pod_spec(named(docs, "Deployment", "-operator"))
    assert operator["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]


def test_a_config_change_rolls_the_pods() -> None:
    def checksums(*sets: str) -> dict[str, str]:
        api = named(render(MINIMAL, sets=sets), "Deployment", "-api")
        return dict(api["spec"]["template"]["metadata"]["annotations"])

    base = checksums()
    assert (
        checksums("config.RISKGATE_RATE_LIMIT=100/60s")["checksum/config"]
        != base["checksum/config"]
    )
    moved = checksums("database.existingSecret=other-db")
    assert moved["checksum/secrets"] != base["checksum/secrets"]


def test_autoscaling_takes_over_replicas() -> None:
    docs = render(CHART / "ci" / "autoscaling-values.yaml")
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == {"riskgate-api", "riskgate-worker"}
    assert hpas["riskgate-api"]["spec"]["minReplicas"] == 3
    assert "replicas" not in named(docs, "Deployment", "-api")["spec"]
    assert not of_kind(render(MINIMAL), "HorizontalPodAutoscaler")


def test_crds_are_kept_on_uninstall_and_can_be_left_out() -> None:
    crds = of_kind(render(MINIMAL), "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} >= {"webhooksubscriptions.riskgate.io"}
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    assert not of_kind(render(CHART / "ci" / "autoscaling-values.yaml"), "CustomResourceDefinition")


def _rules(doc: Doc) -> list[Doc]:
    return list(doc["rules"])


def test_operator_rbac_is_cluster_wide_only_without_namespaces() -> None:
    cluster = render(MINIMAL)
    (role,) = [
        r for r in of_kind(cluster, "ClusterRole") if r["metadata"]["name"].endswith("-operator")
    ]
    assert not of_kind(cluster, "Role")
    scoped = render(CHART / "ci" / "autoscaling-values.yaml")
    roles = of_kind(scoped, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"payments", "bookings"}
    assert {b["metadata"]["namespace"] for b in of_kind(scoped, "RoleBinding")} == {
        "payments",
        "bookings",
    }
    (crd_reader,) = of_kind(scoped, "ClusterRole")
    assert _rules(crd_reader) == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    (cluster_reader,) = [
        r for r in of_kind(cluster, "ClusterRole") if r["metadata"]["name"].endswith("-crds")
    ]
    assert [rule["resources"] for rule in _rules(cluster_reader)] == [["customresourcedefinitions"]]
    for doc in [role, *roles]:
        for rule in _rules(doc):
            assert "*" not in rule["verbs"]
            assert "*" not in rule["resources"]
        by_resource = {r: rule["verbs"] for rule in _rules(doc) for r in rule["resources"]}
        assert by_resource["webhooksubscriptions"] == ["get", "list", "watch", "patch"]
        assert by_resource["webhooksubscriptions/status"] == ["patch"]
        assert by_resource["apiclients"] == ["get", "list", "watch", "patch"]
        assert by_resource["apiclients/status"] == ["patch"]
        # What the operator uses (README, "Managing subscriptions from Kubernetes").
        assert by_resource["secrets"] == ["get", "create", "patch"]
        assert by_resource["events"] == ["create"]


def _ingress_from(docs: list[Doc], name: str) -> list[Doc]:
    (rule,) = named(docs, "NetworkPolicy", name)["spec"]["ingress"]
    return list(rule.get("from", []))


def test_network_policies_admit_the_served_ports_and_the_release_own_callers() -> None:
    docs = render(CHART / "ci" / "autoscaling-values.yaml")
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    assert {n: s["ingress"][0]["ports"][0]["port"] for n, s in policies.items()} == {
        "riskgate-api": 8000,
        "riskgate-worker": 8081,
        "riskgate-operator": 8080,
    }
    operator_labels = named(docs, "Deployment", "-operator")["spec"]["template"]["metadata"]
    peers = _ingress_from(docs, "riskgate-api")
    assert peers[0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert peers[1]["podSelector"]["matchLabels"].items() <= operator_labels["labels"].items()
    assert _ingress_from(render(MINIMAL), "riskgate-api") == []  # open to anyone by default
    dev = render(DEV)
    (peer,) = _ingress_from(dev, "riskgate-postgresql")
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "riskgate"


def test_operator_off_leaves_no_operator_objects() -> None:
    docs = render(CHART / "ci" / "operator-off-values.yaml")
    assert not [d for d in docs if "operator" in d["metadata"]["name"]]
    assert not of_kind(docs, "NetworkPolicy")
    clients = {d["metadata"]["name"] for d in of_kind(docs, "Secret")}
    assert {"riskgate-client-checkout", "riskgate-client-ledger"} <= clients


def test_external_secrets_leave_nothing_generated_but_client_credentials() -> None:
    docs = render(CHART / "ci" / "external-secrets-values.yaml")
    secrets = {d["metadata"]["name"] for d in of_kind(docs, "Secret")}
    assert secrets == {"riskgate-client-riskgate-operator", "riskgate-client-checkout"}
    (api,) = containers(named(docs, "Deployment", "-api"))
    env = _env(api)
    assert env["RISKGATE_REDIS_SENTINELS"]["value"].count(":26379") == 3
    assert (
        env["RISKGATE_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        == "sentinel-password"
    )
    assert env["RISKGATE_JWT_PREVIOUS_KEY_FILE"]["value"].startswith("/var/run/riskgate/")


def test_no_secret_value_lives_in_the_default_values() -> None:
    values = (CHART / "values.yaml").read_text()
    assert "password:" not in values.lower()
    assert "postgresql://" not in values


def test_rules_and_dashboards_are_packaged_with_objectives_from_values(tmp_path: Path) -> None:
    """The chart ships every group of dashboards/rules and every dashboard of dashboards/grafana
    (through its files/ symlinks), with the SLO objectives taken from values."""
    objective = tmp_path / "objective.yaml"
    objective.write_text("slo: {objectives: {availability: 0.995}}\n")
    docs = render(CHART / "ci" / "monitoring-values.yaml", objective)
    (rule,) = of_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    shipped = {g["name"]: g["rules"] for g in rule["spec"]["groups"]}
    source = ROOT / "dashboards"
    expected_groups = {
        group["name"]
        for path in (source / "rules").glob("*.yaml")
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    assert set(shipped) == expected_groups
    objectives = {r["labels"]["slo"]: r["expr"] for r in shipped["riskgate-slo-objectives"]}
    assert objectives == {
        "availability": "vector(0.995)",  # from values
        "latency": "vector(0.95)",  # chart defaults
        "webhook_delivery": "vector(0.999)",
    }
    boards = {
        name: text
        for config in of_kind(docs, "ConfigMap")
        if config["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for name, text in config["data"].items()
    }
    grafana = source / "grafana"
    assert boards == {path.name: path.read_text() for path in grafana.glob("*.json")}
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}


def test_the_repository_rules_and_dashboards_are_all_packaged() -> None:
    docs = render(CHART / "ci" / "monitoring-values.yaml")
    sources = sorted((CHART / "files" / "rules").glob("*.yaml"))
    expected = [
        g["name"] for p in sources for g in (yaml.safe_load(p.read_text()) or {}).get("groups", [])
    ]
    packaged = [g["name"] for r in of_kind(docs, "PrometheusRule") for g in r["spec"]["groups"]]
    assert packaged == expected
    boards = [
        c for c in of_kind(docs, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    assert len(boards) == len(list((CHART / "files" / "dashboards").glob("*.json")))


def test_helm_test_asks_the_api_whether_it_is_ready() -> None:
    (pod,) = of_kind(render(MINIMAL), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert containers(pod)[0]["command"][-1] == "http://riskgate-api:8000/v1/health/ready"


def _rendered_notes(tmp_path: Path, values: Path) -> str:
    """NOTES.txt as `helm install` prints it (which needs a cluster): the same text rendered
    through a ConfigMap in a copy of the chart."""
    chart = tmp_path / "riskgate"
    shutil.copytree(CHART, chart, symlinks=False)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes.tpl").write_text(
        f'{{{{- define "notes" -}}}}{notes}{{{{- end -}}}}'
    )
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "notes" . | quote }}}\n'
    )
    (doc,) = render(values, chart=chart, show_only="templates/notes.yaml")
    return str(doc["data"]["notes"])


def test_notes_tell_the_user_what_to_do_next(tmp_path: Path) -> None:
    notes = _rendered_notes(tmp_path, MINIMAL)
    assert "kubectl -n riskgate port-forward svc/riskgate-api 8000" in notes
    assert "helm test riskgate" in notes
    assert "kubectl get whsub,rgclient -A" in notes

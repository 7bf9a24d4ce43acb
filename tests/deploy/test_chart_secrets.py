"""What the chart generates is what riskgate's own loaders accept: the rendered API pod's
environment and key files, resolved the way the kubelet would, load into Settings, the token
signing keys and the webhook key ring."""

from __future__ import annotations

import base64
from pathlib import Path

from k8s_support import CHART, Doc, containers, named, of_kind, pod_spec, render

from riskgate.auth.signing import SigningKeys
from riskgate.settings import Settings
from riskgate.webhooks.config import load_key_ring

DEV = CHART / "ci" / "in-cluster-databases-values.yaml"


def _secret_data(docs: list[Doc]) -> dict[tuple[str, str], str]:
    return {
        (s["metadata"]["name"], key): base64.b64decode(value).decode()
        for s in of_kind(docs, "Secret")
        for key, value in s["data"].items()
    }


def _mount_secrets(docs: list[Doc], deployment: Doc, root: Path) -> dict[str, Path]:
    """Write each secret volume's items where the container mounts them, under ``root``."""
    data = _secret_data(docs)
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"] if "secret" in v}
    moved: dict[str, Path] = {}
    for mount in containers(deployment)[0]["volumeMounts"]:
        volume = volumes.get(mount["name"])
        if volume is None:
            continue
        for item in volume["secret"]["items"]:
            target = root / mount["mountPath"].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[(volume["secret"]["secretName"], item["key"])])
            moved[f"{mount['mountPath']}/{item['path']}"] = target
    return moved


def _environment(docs: list[Doc], deployment: Doc, files: dict[str, Path]) -> dict[str, str]:
    (container,) = containers(deployment)
    data = _secret_data(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = str(files.get(item["value"], item["value"]))
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = data[(ref["name"], ref["key"])]
    return env


def test_api_pod_environment_and_generated_keys_load(tmp_path: Path) -> None:
    docs = render(DEV)
    api = named(docs, "Deployment", "-api")
    env = _environment(docs, api, _mount_secrets(docs, api, tmp_path))
    settings = Settings.from_env(env)

    assert settings.host == "0.0.0.0"
    assert settings.database_url.startswith("postgresql://riskgate_login:")
    assert settings.redis_url.startswith("redis://:")
    keys = SigningKeys.from_files(
        Path(settings.jwt_signing_key_file), None, issuer="riskgate", audience="riskgate-api"
    )
    assert keys.jwks()["keys"][0]["crv"] == "Ed25519"
    ring = load_key_ring(settings)
    assert ring.configured
    assert ring.current_key_id == "generated-1"


def test_each_install_generates_its_own_keys() -> None:
    first, second = (_secret_data(render(DEV, sets=[f"commonLabels.run=r{i}"])) for i in (1, 2))
    key = ("riskgate-generated", "signing-key.pem")
    assert first[key] != second[key]
    operator = ("riskgate-client-riskgate-operator", "client-secret")
    assert first[operator] != second[operator]
    assert len(first[operator]) == 48

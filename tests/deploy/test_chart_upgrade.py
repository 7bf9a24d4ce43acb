"""Generated secrets survive upgrades: Helm's `lookup` run for real against an emulated
Kubernetes API (kmock), the way `helm upgrade` renders against a cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from k8s_support import CHART, Doc, load_docs, of_kind, tools_bin

DEV = CHART / "ci" / "in-cluster-databases-values.yaml"
TEMPLATES_WITH_SECRETS = (
    "templates/secret-generated.yaml",
    "templates/secret-clients.yaml",
    "templates/dev-databases-secret.yaml",
)


class Emulator(kmock.KubernetesEmulator):
    """kmock answers core discovery with groupVersion "/v1"; Helm's REST mapper wants "v1"."""

    async def _serve_version(self, request: kmock.Request) -> Any:
        payload = await super()._serve_version(request)
        if request.resource is not None and request.resource.group == "":
            payload["groupVersion"] = "v1"
        return payload


class Cluster:
    def __init__(self, server: kmock.Server, kubeconfig: Path) -> None:
        self.server = server
        self.kubeconfig = kubeconfig

    async def render(self, *show_only: str) -> list[Doc]:
        """`helm template --dry-run=server`: templates rendered with lookup against the API."""
        args = ["template", "riskgate", str(CHART), "-n", "riskgate", "-f", str(DEV)]
        args += ["--dry-run=server", *(f"--show-only={t}" for t in show_only)]
        proc = await asyncio.create_subprocess_exec(
            str(tools_bin() / "helm"),
            *args,
            env={"KUBECONFIG": str(self.kubeconfig), "HOME": str(self.kubeconfig.parent)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return load_docs(out.decode())

    async def apply(self, docs: list[Doc]) -> None:
        for doc in docs:
            path = f"/api/v1/namespaces/{doc['metadata']['namespace']}/secrets"
            async with self.server.client.post(path, json=doc) as response:
                assert response.status < 300, await response.text()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        emulator.resources["v1/secrets"] = kmock.ResourceInfo(
            kind="Secret", singular="secret", namespaced=True, verbs={"get", "list", "create"}
        )
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps(_kubeconfig(str(server.url).rstrip("/"))))
        yield Cluster(server, kubeconfig)


def _kubeconfig(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulated", "cluster": {"server": url}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "nobody"}}],
        "current-context": "emulated",
    }


def _data(docs: list[Doc]) -> dict[str, Any]:
    return {d["metadata"]["name"]: d["data"] for d in of_kind(docs, "Secret")}


def _checksums(docs: list[Doc]) -> dict[str, str]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]
        for d in of_kind(docs, "Deployment")
        if d["metadata"]["name"].startswith("riskgate-")
        and "annotations" in d["spec"]["template"]["metadata"]
    }


async def test_an_upgrade_reuses_every_generated_secret_and_rolls_nothing(
    cluster: Cluster,
) -> None:
    installed = await cluster.render()
    secrets = [d for d in installed if d["kind"] == "Secret"]
    assert {d["metadata"]["name"] for d in secrets} == {
        "riskgate-generated",
        "riskgate-client-riskgate-operator",
        "riskgate-dev-databases",
    }
    # Before the install exists, each render generates anew: the comparison below can fail.
    assert _data(await cluster.render(*TEMPLATES_WITH_SECRETS)) != _data(secrets)

    await cluster.apply(secrets)
    upgraded = await cluster.render()

    assert _data(upgraded) == _data(secrets)
    assert _checksums(upgraded) == _checksums(installed)
    assert set(_checksums(installed)) >= {"riskgate-api", "riskgate-worker", "riskgate-operator"}

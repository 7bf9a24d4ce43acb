"""The Secrets the operator owns or reads and the ApiClients it resolves, through lightkube, and
the mapping between a WebhookSubscription's Secret and the rotation state it records."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from lightkube import ApiError as KubeApiError
from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from riskgate_operator.schedule import SecretState

GROUP = "riskgate.io"
VERSION = "v1alpha1"
KIND = "WebhookSubscription"
CLIENT_KIND = "ApiClient"
CURRENT_KEY = "secret"
PREVIOUS_KEY = "previous"
ROTATED_AT = f"{GROUP}/rotated-at"
PREVIOUS_EXPIRES_AT = f"{GROUP}/previous-expires-at"
ROTATION_REQUEST = f"{GROUP}/rotation-request"
ROTATE_REQUESTED_AT = f"{GROUP}/rotate-requested-at"
MANAGED_BY = "riskgate-operator"
ApiClient = create_namespaced_resource(GROUP, VERSION, CLIENT_KIND, "apiclients")


def owned_secret_name(resource_name: str) -> str:
    return f"{resource_name}-webhook-secret"


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def moment(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


def decode(data: dict[str, str], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else base64.b64decode(value).decode()


def encode(value: str | None) -> str | None:
    """Base64 for a Secret's data; None stays None (a merge patch deletes the key)."""
    return None if value is None else base64.b64encode(value.encode()).decode()


def state_of(secret: dict[str, Any]) -> SecretState | None:
    """The rotation state an owned Secret records; None if it holds no usable secret."""
    data = secret.get("data") or {}
    notes = (secret.get("metadata") or {}).get("annotations") or {}
    current = decode(data, CURRENT_KEY)
    rotated_at = moment(notes.get(ROTATED_AT))
    if current is None or rotated_at is None:
        return None
    return SecretState(
        current=current,
        rotated_at=rotated_at,
        previous=decode(data, PREVIOUS_KEY),
        previous_expires_at=moment(notes.get(PREVIOUS_EXPIRES_AT)),
        handled_request=notes.get(ROTATION_REQUEST) or None,
    )


def _state_fields(state: SecretState) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(data, annotations) of ``state``; None values delete keys in a merge patch."""
    data = {CURRENT_KEY: encode(state.current), PREVIOUS_KEY: encode(state.previous)}
    notes = {
        ROTATED_AT: stamp(state.rotated_at),
        PREVIOUS_EXPIRES_AT: None
        if state.previous_expires_at is None
        else stamp(state.previous_expires_at),
        ROTATION_REQUEST: state.handled_request,
    }
    return data, notes


@dataclass(frozen=True, slots=True)
class Owner:
    namespace: str
    name: str
    uid: str
    kind: str = KIND


def new_secret(
    owner: Owner, name: str, data: dict[str, str | None], notes: dict[str, str | None]
) -> dict[str, Any]:
    """A new Secret owned by ``owner`` (garbage-collected with it), labelled managed-by."""
    label = {KIND: f"{GROUP}/webhook-subscription", CLIENT_KIND: f"{GROUP}/api-client"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, label[owner.kind]: owner.name},
            "annotations": {k: v for k, v in notes.items() if v is not None},
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": owner.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {k: v for k, v in data.items() if v is not None},
    }


def owned_secret(owner: Owner, state: SecretState) -> dict[str, Any]:
    """A WebhookSubscription's new signing Secret."""
    data, notes = _state_fields(state)
    return new_secret(owner, owned_secret_name(owner.name), data, notes)


def owned_by(secret: dict[str, Any], uid: str) -> bool:
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def state_patch(state: SecretState, resource_version: str) -> dict[str, Any]:
    """A merge patch writing ``state`` in one update, only over the version it was planned on."""
    data, notes = _state_fields(state)
    return merge_patch(data, notes, resource_version)


def merge_patch(
    data: dict[str, str | None], notes: dict[str, str | None], resource_version: str
) -> dict[str, Any]:
    """Data and annotations in one update, only over the version they were planned on."""
    return {"metadata": {"resourceVersion": resource_version, "annotations": notes}, "data": data}


class Conflict(Exception):
    """The Secret changed since it was read (or appeared meanwhile): read it again."""


class SecretsApi:
    """Secrets (read, created, patched) and ApiClients (read) in Kubernetes."""

    def __init__(self, client: AsyncClient | None = None) -> None:
        self._client = client

    def _kube(self) -> AsyncClient:
        # Created on first use: lightkube reads the kubeconfig or the service account here.
        if self._client is None:
            self._client = AsyncClient(field_manager=MANAGED_BY)
        return self._client

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._read(Secret, namespace, name)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            made = await self._kube().create(cast(Secret, Secret.from_dict(body)))
        except KubeApiError as exc:
            if exc.status.code == 409:
                raise Conflict(body["metadata"]["name"]) from None
            raise
        return dict(made.to_dict())

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        try:
            patched = await self._kube().patch(
                Secret, name, patch, namespace=namespace, patch_type=PatchType.MERGE
            )
        except KubeApiError as exc:
            if exc.status.code == 409:
                raise Conflict(name) from None
            raise
        return dict(patched.to_dict())

    async def api_client(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An ApiClient resource (a WebhookSubscription names it); None when there is none."""
        return await self._read(ApiClient, namespace, name)

    async def _read(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self._kube().get(kind, name, namespace=namespace)
        except KubeApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return dict(found.to_dict())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

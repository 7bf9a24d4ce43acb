"""kmock's Kubernetes emulator, with what it lacks for a real operator process and kubectl
(see K8S_TESTING.md): metadata stamping (uid, resourceVersion, generation,
creationTimestamp), JSON patches with their ``test`` ops (422 when one fails) and
resourceVersion preconditions in merge patches (409), the status subresource, CRD registration
with schema + CEL admission of custom resources (crd_rules), ``<Kind>List`` lists with field
selectors, the core group version in discovery, and plain ``application/json``.

Not emulated (asserted statically instead): ownerReference garbage collection, RBAC, tables.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import dicts, enums, rendering

from crd_rules import admit_with

CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = kmock.resource("", "v1", "namespaces")
VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}
# What the operator and the tests use of the built-in API.
CORE = [
    (kmock.resource("", "v1", "secrets"), "Secret", True, set()),
    (kmock.resource("", "v1", "events"), "Event", True, {"ev"}),
    (NAMESPACES, "Namespace", False, {"ns"}),
    (CRDS, "CustomResourceDefinition", False, {"crd", "crds"}),
]


class _PlainJsonRequest(aiohttp.web.BaseRequest):
    async def _prepare_hook(self, response: aiohttp.web.StreamResponse) -> None:
        # kubectl wait/get -w and lightkube want exactly application/json, streams included.
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("application/json") or kind == "application/octet-stream":
            response.headers["Content-Type"] = "application/json"
        await super()._prepare_hook(response)


class PlainJsonServer(aiohttp.test_utils.RawTestServer):
    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> aiohttp.web.ServerRunner:
        def factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            loop = asyncio.get_running_loop()
            return _PlainJsonRequest(message, payload, protocol, writer, task, loop)

        server = aiohttp.web.Server(
            self._handler, loop=self._loop, debug=debug, request_factory=factory, **kwargs
        )
        return aiohttp.web.ServerRunner(server, debug=debug, **kwargs)


class Invalid(kmock.KubernetesError):
    pass


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details={})


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    _version: int = attrs.field(default=0, init=False)
    _schemas: dict[Any, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _with_status: set[Any] = attrs.field(factory=set, init=False)
    # Every watch event with its resourceVersion, so a watch resumes exactly where its list
    # (or its previous watch) ended, as on a real server: no event lost between the two.
    _log: list[tuple[int, Any, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _changed: asyncio.Condition = attrs.field(factory=asyncio.Condition, init=False)
    _ending: bool = attrs.field(default=False, init=False)

    async def end_watches(self, ending: bool = True) -> None:
        """Close every open watch stream (the server stops at once instead of waiting for
        them to time out), or, with ``ending=False``, let new ones stay open again."""
        self._ending = ending
        async with self._changed:
            self._changed.notify_all()

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource, kind, namespaced, short in CORE:
            self.resources[resource] = kmock.ResourceInfo(
                kind=kind,
                singular=kind.lower(),
                namespaced=namespaced,
                verbs=VERBS,
                shortnames=short,
            )
        for name in ("default", "kube-system"):
            self._objects[NAMESPACES, None, name] = self._stamped(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, None
            )

    # --- helpers -------------------------------------------------------------------------

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _stamped(self, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            generation=1,
            creationTimestamp=_now(),
        )
        return obj

    def _admit(
        self, resource: Any, obj: dict[str, Any], old: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        schema = self._schemas.get(resource)
        if schema is None:
            return obj
        defaulted, errors = admit_with(schema, obj, old)
        if errors:
            raise Invalid(status=422, reason="Invalid", message="; ".join(errors), details={})
        return defaulted

    def _register(self, crd: dict[str, Any]) -> None:
        """What a real API server does when a CRD is created: serve its resource."""
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            resource = kmock.resource(spec["group"], version["name"], names["plural"])
            subresources = set(version.get("subresources") or {})
            self.resources[resource] = kmock.ResourceInfo(
                kind=names["kind"],
                singular=names.get("singular"),
                namespaced=spec["scope"] == "Namespaced",
                shortnames=set(names.get("shortNames") or []),
                categories=set(names.get("categories") or []),
                subresources=subresources,
                verbs=VERBS,
            )
            self._schemas[resource] = version["schema"]["openAPIV3Schema"]
            if "status" in subresources:
                self._with_status.add(resource)
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": t, "lastTransitionTime": _now()}
                for t in ("NamesAccepted", "Established")
            ],
        }

    async def _emit(self, resource: Any, kind: str, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        if kind == "DELETED":
            obj["metadata"]["resourceVersion"] = self._next_version()
        version = int(obj["metadata"]["resourceVersion"])
        self._log.append((version, resource, {"type": kind, "object": obj}))
        async with self._changed:
            self._changed.notify_all()

    # --- writes ----------------------------------------------------------------------------

    async def _create(self, request: rendering.Request) -> None:
        obj = copy.deepcopy(request.data)
        namespace = request.namespace or obj.get("metadata", {}).get("namespace")
        if request.resource in self._with_status:
            obj.pop("status", None)
        obj = self._admit(request.resource, obj)
        obj = self._stamped(obj, namespace)
        key = (request.resource, namespace, obj["metadata"]["name"])
        if key in self._objects and not self._objects[key].deleted:
            name = obj["metadata"]["name"]
            raise _status(409, "AlreadyExists", f"{request.resource.plural} {name!r} exists")
        if request.resource == CRDS:
            self._register(obj)
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        # The response handler reads the object back by the request's name.
        request.data.setdefault("metadata", {})["name"] = obj["metadata"]["name"]
        await self._emit(request.resource, "ADDED", obj)

    def _patched(self, request: rendering.Request, current: dict[str, Any]) -> dict[str, Any]:
        kind = request.headers.get("Content-Type", "")
        if "json-patch" in kind:
            try:
                new: dict[str, Any] = jsonpatch.apply_patch(current, request.data)
            except jsonpatch.JsonPatchTestFailed as exc:
                raise _status(422, "Invalid", f"the patch's test failed: {exc}") from None
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _status(422, "Invalid", f"the patch does not apply: {exc}") from None
            return new
        wanted = (request.data.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise _status(409, "Conflict", "the object has been modified; read it again")
        return dict(dicts.merge_patch_dict(current, request.data))

    async def _update(self, request: rendering.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        stored = self._objects[key]
        current = copy.deepcopy(stored.raw)
        new = self._patched(request, copy.deepcopy(current))
        if request.subresource == "status":
            new = {**current, "status": new.get("status")}
        elif request.resource in self._with_status:
            new["status"] = current.get("status")
        if new.get("status") is None:
            new.pop("status", None)
        for field in ("uid", "creationTimestamp", "name", "namespace", "generation"):
            if field in current["metadata"]:
                new["metadata"][field] = current["metadata"][field]
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            return  # a no-op patch changes nothing, not even the resourceVersion
        new = self._admit(request.resource, new, current)
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = self._next_version()
        stored.history.append(new)
        await self._released(request.resource, key, new)

    async def _released(self, resource: Any, key: Any, obj: dict[str, Any]) -> None:
        """MODIFIED, or DELETED once a deleted object has no finalizers left."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._objects[key].delete()
            await self._emit(resource, "DELETED", obj)
        else:
            await self._emit(resource, "MODIFIED", obj)

    async def _delete(self, request: rendering.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        stored = self._objects[key]
        obj = copy.deepcopy(stored.raw)
        if obj["metadata"].get("deletionTimestamp"):
            return
        if obj["metadata"].get("finalizers"):
            obj["metadata"]["deletionTimestamp"] = _now()
            obj["metadata"]["resourceVersion"] = self._next_version()
            stored.history.append(obj)
            await self._emit(request.resource, "MODIFIED", obj)
        else:
            stored.delete()
            await self._emit(request.resource, "DELETED", obj)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock cannot parse /api/v1/namespaces (no namespace after "namespaces"): serve it here.
        if raw_request.method == "GET" and raw_request.path.rstrip("/") == "/api/v1/namespaces":
            await raw_request.read()
            items = [
                obj.raw
                for (resource, _, _), obj in self._objects.items()
                if resource == NAMESPACES and not obj.deleted
            ]
            listed = {"apiVersion": "v1", "kind": "NamespaceList", "items": items}
            return aiohttp.web.json_response({**listed, "metadata": {"resourceVersion": "1"}})
        return await super().__call__(raw_request)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        writes = {
            enums.action.CREATE: self._create,
            enums.action.UPDATE: self._update,
            enums.action.DELETE: self._delete,
        }
        write = writes.get(request.action) if request.resource is not None else None
        if write is not None and "protobuf" in request.headers.get("Content-Type", ""):
            # kubectl's generators (create secret ...) send protobuf: use -f manifests here.
            raise _status(415, "UnsupportedMediaType", "this emulator speaks JSON only")
        if write is not None and (request.name or request.action == enums.action.CREATE):
            async with self._lock:
                await write(request)
        # Skip the parent emulator's own (unstamped) writes; serve the reading side as usual.
        return await kmock.KubernetesScaffold._handle(self, request)

    # --- reads -----------------------------------------------------------------------------

    def _matching(self, request: rendering.Request) -> list[dict[str, Any]]:
        selector = request.params.get("fieldSelector", "")
        wanted = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
        found = []
        for (resource, namespace, name), obj in self._objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            if "metadata.name" in wanted and name != wanted["metadata.name"]:
                continue
            found.append(obj.raw)
        return found

    def _kind(self, resource: Any) -> str:
        for known in self._get_resources():
            if known == resource:
                info = self.resources[known]
                return info.kind or resource.plural.capitalize()
        raise kmock.KubernetesResourceNotFoundError()

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        kind = self._kind(request.resource)
        async with self._lock:
            items = self._matching(request)
        group = request.resource.group
        return {
            "apiVersion": f"{group}/{request.resource.version}" if group else "v1",
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""
        selector = request.params.get("fieldSelector", "")
        named = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
        since = int(request.params.get("resourceVersion") or 0)

        def wanted(resource: Any, event: dict[str, Any]) -> bool:
            meta = event["object"]["metadata"]
            return (
                resource == request.resource
                and request.namespace in (None, meta.get("namespace"))
                and named.get("metadata.name") in (None, meta.get("name"))
            )

        async with self._lock:
            position = len(self._log)
            if since:
                first = [e for v, r, e in self._log if v > since and wanted(r, e)]
            else:
                first = [{"type": "ADDED", "object": o} for o in self._matching(request)]
        for event in first:
            yield event
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda seen=position: len(self._log) > seen or self._ending
                )
            if self._ending:
                return
            fresh, position = self._log[position:], len(self._log)
            for _, resource, event in fresh:
                if wanted(resource, event):
                    yield event

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        served = await super()._serve_version(request)
        if isinstance(served, dict) and served.get("groupVersion") == "/v1":
            served["groupVersion"] = "v1"  # the core group has no name
        return served


def kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: emulator\n  cluster:\n    server: {server}\n"
        "users:\n- name: tester\n  user:\n    token: emulator-token\n"
        "contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: tester\n"
        f"    namespace: {namespace}\n"
        "current-context: emulator\n"
    )
    return path

"""The riskgate service as the operator sees it: OAuth2 client credentials (a token per scope),
the managed-subscription routes and the client admin API, with every failure classified as
temporary or permanent."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

SYNC_SCOPE = "subscriptions:sync"
ADMIN_SCOPE = "clients:admin"
MANAGED = "/v1/webhooks/managed-subscriptions/{namespace}/{name}"
CLIENT = "/v1/admin/clients/{namespace}/{name}"
# Renew a token this long before it expires, so no request goes out with a token about to lapse.
RENEW_BEFORE_SECONDS = 30.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class ApiError(Exception):
    """A call that did not succeed. ``temporary``: retry later (5xx, 429, timeouts, refused
    connections, our own credential refused); otherwise the service refused this request and
    will refuse it again until the spec changes."""

    def __init__(
        self,
        temporary: bool,
        reason: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.reason = reason
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def error_class(self) -> str:
        return "temporary" if self.temporary else "permanent"


def _reason(slug: str) -> str:
    """A problem type's slug as a condition reason: ``webhook-target-refused`` ->
    ``WebhookTargetRefused``."""
    return "".join(part.capitalize() for part in slug.split("-") if part) or "Refused"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def classify(response: httpx.Response) -> ApiError:
    """The error a non-2xx answer stands for (RFC 9457 problem documents give the reason)."""
    try:
        problem: dict[str, Any] = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    slug = str(problem.get("type") or problem.get("error") or "").rsplit("/", 1)[-1]
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    field = problem.get("field")
    message = f"{detail} (field {field})" if field else detail
    status = response.status_code
    # 401/403 say our own credential is wrong, not the resource: fixable without a spec change.
    temporary = status >= 500 or status in (401, 403, 408, 429)
    reason = _reason(slug) if slug else f"HTTP{status}"
    return ApiError(temporary, reason, message, status, _retry_after(response))


def _token_refused(error: ApiError, scope: str) -> ApiError:
    """Our own credential refused: temporary (fixed by the operator's client, not the spec)."""
    if error.reason == "InvalidScope":
        message = f"the operator's riskgate client does not hold the scope {scope}"
        return ApiError(True, "OperatorScopeMissing", message, error.status)
    return ApiError(True, "TokenRefused", error.message, error.status, error.retry_after)


@dataclass
class _Token:
    value: str
    expires_at: float


class RiskgateApi:
    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], tuple[str, str]],
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._credentials = credentials
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT)
        # One token per scope, so a client without clients:admin still syncs subscriptions.
        self._tokens: dict[str, _Token] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(True, "ServiceTimeout", f"{method} {url} timed out") from None
        except httpx.TransportError as exc:
            raise ApiError(True, "ServiceUnreachable", f"{method} {url}: {exc!r}") from None

    async def token(self, scope: str = SYNC_SCOPE) -> str:
        """A cached access token for ``scope``, renewed shortly before it expires."""
        cached = self._tokens.get(scope)
        if cached is not None and time.monotonic() < cached.expires_at:
            return cached.value
        try:
            client_id, secret = self._credentials()
        except OSError as exc:
            raise ApiError(True, "CredentialUnreadable", str(exc)) from None
        response = await self._send(
            "POST",
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client_id, secret),
        )
        if response.status_code != 200:
            raise _token_refused(classify(response), scope)
        body = response.json()
        lifetime = float(body.get("expires_in", 60))
        renew_at = time.monotonic() + max(lifetime - RENEW_BEFORE_SECONDS, lifetime / 2)
        self._tokens[scope] = _Token(str(body["access_token"]), renew_at)
        return self._tokens[scope].value

    async def _call(
        self, method: str, url: str, scope: str = SYNC_SCOPE, **kwargs: Any
    ) -> httpx.Response:
        """One authorised call; a token the service no longer takes is replaced once."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {await self.token(scope)}"}
            response = await self._send(method, url, headers=headers, **kwargs)
            if response.status_code != 401 or attempt == 2:
                return response
            self._tokens.pop(scope, None)
        raise AssertionError("unreachable")

    async def sync(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT the subscription (created or replaced); its representation."""
        path = MANAGED.format(namespace=namespace, name=name)
        synced, _ = await self._submit("PUT", path, SYNC_SCOPE, body, (200, 201))
        return synced

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The subscription with its delivery health; None when the service has none."""
        return await self._read(MANAGED.format(namespace=namespace, name=name), SYNC_SCOPE)

    async def delete(self, namespace: str, name: str) -> bool:
        """True when deleted now, False when it was already gone."""
        return await self._remove(MANAGED.format(namespace=namespace, name=name), SYNC_SCOPE)

    async def _submit(
        self, method: str, path: str, scope: str, body: dict[str, Any], accepted: tuple[int, ...]
    ) -> tuple[dict[str, Any], int]:
        """A JSON body sent, a JSON answer with one of the ``accepted`` statuses."""
        response = await self._call(method, path, scope, json=body)
        if response.status_code not in accepted:
            raise classify(response)
        answer: dict[str, Any] = response.json()
        return answer, response.status_code

    async def _read(self, path: str, scope: str) -> dict[str, Any] | None:
        response = await self._call("GET", path, scope)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise classify(response)
        found: dict[str, Any] = response.json()
        return found

    async def _remove(self, path: str, scope: str) -> bool:
        response = await self._call("DELETE", path, scope)
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            raise classify(response)
        return True

    # --- the client admin API (ApiClient resources) ----------------------------------------

    async def apply_client(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """PUT the client's spec: (its view, True when this call created it)."""
        path = CLIENT.format(namespace=namespace, name=name)
        view, status = await self._submit("PUT", path, ADMIN_SCOPE, body, (200, 201))
        return view, status == 201

    async def get_client(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The client's view (scopes, status, working key prefixes); None when it has none."""
        return await self._read(CLIENT.format(namespace=namespace, name=name), ADMIN_SCOPE)

    async def rotate_client(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """POST .../rotate with the proposed pair: the answer (``rotated``, the overlap's end)."""
        path = CLIENT.format(namespace=namespace, name=name) + "/rotate"
        answer, _ = await self._submit("POST", path, ADMIN_SCOPE, body, (200,))
        return answer

    async def delete_client(self, namespace: str, name: str) -> bool:
        """True when deleted now, False when it was already gone."""
        return await self._remove(CLIENT.format(namespace=namespace, name=name), ADMIN_SCOPE)

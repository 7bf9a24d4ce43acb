"""The riskgate service as the operator sees it: OAuth2 client credentials and the
managed-subscription routes, with every failure classified as temporary or permanent."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

SCOPE = "subscriptions:sync"
MANAGED = "/v1/webhooks/managed-subscriptions/{namespace}/{name}"
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
        self._token: _Token | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(True, "ServiceTimeout", f"{method} {url} timed out") from None
        except httpx.TransportError as exc:
            raise ApiError(True, "ServiceUnreachable", f"{method} {url}: {exc!r}") from None

    async def token(self) -> str:
        """A cached access token, renewed shortly before it expires."""
        if self._token is not None and time.monotonic() < self._token.expires_at:
            return self._token.value
        try:
            client_id, secret = self._credentials()
        except OSError as exc:
            raise ApiError(True, "CredentialUnreadable", str(exc)) from None
        response = await self._send(
            "POST",
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": SCOPE},
            auth=(client_id, secret),
        )
        if response.status_code != 200:
            error = classify(response)
            raise ApiError(True, "TokenRefused", error.message, error.status, error.retry_after)
        body = response.json()
        lifetime = float(body.get("expires_in", 60))
        renew_at = time.monotonic() + max(lifetime - RENEW_BEFORE_SECONDS, lifetime / 2)
        self._token = _Token(str(body["access_token"]), renew_at)
        return self._token.value

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One authorised call; a token the service no longer takes is replaced once."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {await self.token()}"}
            response = await self._send(method, url, headers=headers, **kwargs)
            if response.status_code != 401 or attempt == 2:
                return response
            self._token = None
        raise AssertionError("unreachable")

    async def sync(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT the subscription (created or replaced); its representation."""
        path = MANAGED.format(namespace=namespace, name=name)
        response = await self._call("PUT", path, json=body)
        if response.status_code not in (200, 201):
            raise classify(response)
        synced: dict[str, Any] = response.json()
        return synced

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The subscription with its delivery health; None when the service has none."""
        response = await self._call("GET", MANAGED.format(namespace=namespace, name=name))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise classify(response)
        found: dict[str, Any] = response.json()
        return found

    async def delete(self, namespace: str, name: str) -> bool:
        """True when deleted now, False when it was already gone."""
        response = await self._call("DELETE", MANAGED.format(namespace=namespace, name=name))
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            raise classify(response)
        return True

"""One delivery attempt as plain functions: the body, the signed headers, the HTTP exchange,
and what the result means (success, retry, permanent failure), with no database in sight."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpcore
import httpx
import msgspec

from riskgate import __version__
from riskgate.observability.metrics import WebhookErrorClass, WebhookOutcome
from riskgate.webhooks.retry import next_delay, parse_retry_after
from riskgate.webhooks.schemas import Envelope
from riskgate.webhooks.signing import signature_headers
from riskgate.webhooks.ssrf import TargetRefused, split_target

Kind = Literal["success", "temporary", "permanent", "gone"]
USER_AGENT = f"riskgate-webhooks/{__version__}"
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    signature_header: str
    timeout_seconds: float
    excerpt_bytes: int
    schedule: tuple[float, ...]
    jitter: float
    retry_after_max: float


@dataclass(frozen=True, slots=True)
class Result:
    """What one HTTP exchange gave."""

    kind: Kind
    duration: float
    status_code: int | None = None
    error_class: WebhookErrorClass | None = None
    retry_after: float | None = None
    excerpt: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: WebhookOutcome
    retry_in: float | None


def envelope(event_type: str, occurred_at: datetime, payload: bytes) -> bytes:
    """``{"type", "timestamp", "data"}``: the exact bytes that are signed and sent."""
    return _encoder.encode(Envelope(event_type, occurred_at, msgspec.Raw(payload)))


def request_headers(
    msg_id: str,
    secrets: list[str],
    body: bytes,
    timestamp: int,
    header_name: str,
    traceparent: str | None,
) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signature_headers(secrets, msg_id, timestamp, body, header_name),
    }
    if traceparent:
        headers["traceparent"] = traceparent
    return headers


def classify_status(status: int) -> tuple[Kind, WebhookErrorClass | None]:
    """2xx success; 408, 429 and 5xx are worth retrying; 410 disables; the rest is final."""
    if 200 <= status < 300:
        return "success", None
    if status == 410:
        return "gone", "http_410"
    if status in (408, 429):
        return "temporary", "http_408" if status == 408 else "http_429"
    if status >= 500:
        return "temporary", "http_5xx"
    if 300 <= status < 400:
        return "permanent", "http_3xx"  # redirects are never followed
    return "permanent", "http_4xx"


def classify_error(exc: BaseException) -> tuple[Kind, WebhookErrorClass]:
    if isinstance(exc, TargetRefused):
        return "permanent", "invalid_url" if exc.reason in (
            "invalid_url",
            "scheme",
        ) else "ssrf_blocked"
    if isinstance(exc, (TimeoutError, httpx.TimeoutException, httpcore.TimeoutException)):
        return "temporary", "timeout"
    if isinstance(exc, ssl.SSLError) or "SSL" in type(exc.__cause__ or exc).__name__:
        return "temporary", "tls"
    if isinstance(exc, (httpcore.ConnectError, httpx.ConnectError, OSError)):
        text = str(exc).lower()
        return "temporary", "dns" if "resolve" in text or "name" in text else "connect"
    return "temporary", "protocol"


async def _read_excerpt(response: httpx.Response, limit: int) -> str:
    kept = bytearray()
    async for chunk in response.aiter_raw():
        kept += chunk[: max(0, limit - len(kept))]
        if len(kept) >= limit:
            break
    return kept.decode("utf-8", "replace").replace("\x00", "")


async def send(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    config: DeliveryConfig,
) -> Result:
    """POST once under one deadline for the whole exchange; never raises for network trouble."""
    started = time.perf_counter()
    try:
        split_target(url)
        async with asyncio.timeout(config.timeout_seconds):
            request = client.build_request("POST", url, content=body, headers=headers)
            response = await client.send(request, stream=True)
            try:
                excerpt = await _read_excerpt(response, config.excerpt_bytes)
            finally:
                await response.aclose()
    except Exception as exc:  # every failure is classified; none escapes
        kind, error_class = classify_error(exc)
        return Result(kind, time.perf_counter() - started, error_class=error_class)
    kind, status_class = classify_status(response.status_code)
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    return Result(
        kind,
        time.perf_counter() - started,
        status_code=response.status_code,
        error_class=status_class,
        retry_after=retry_after,
        excerpt=excerpt,
    )


def verdict(result: Result, cycle_attempts: int, config: DeliveryConfig) -> Verdict:
    """``cycle_attempts`` counts this attempt: the schedule decides whether another follows."""
    if result.kind == "success":
        return Verdict("succeeded", None)
    if result.kind != "temporary":
        return Verdict("failed", None)
    delay = next_delay(
        config.schedule,
        cycle_attempts,
        jitter=config.jitter,
        retry_after=result.retry_after,
        retry_after_max=config.retry_after_max,
    )
    return Verdict("exhausted", None) if delay is None else Verdict("retrying", delay)

"""A client that hangs up before its request body is complete.

Driven at the ASGI level, as a server does it: the first chunk of a body, then
``http.disconnect``. Nothing went wrong on our side, so it is neither a 500 in the metrics
(and the SLOs built on them) nor an ERROR line with a traceback: it is counted as 499.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from conftest import RunningApp, new_key


def requests_total(route: str, status: int) -> float:
    labels = {"method": "POST", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("riskgate_http_requests_total", labels) or 0.0


def http_scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("riskgate.test", 80),
    }


@pytest.mark.parametrize(
    ("path", "content_type", "first_chunk"),
    [
        ("/v1/score", "application/json", b'{"event_id": "ev-1", "sour'),
        ("/oauth2/token", "application/x-www-form-urlencoded", b"grant_type=client_cre"),
    ],
)
async def test_a_client_that_hangs_up_mid_body_is_a_quiet_499(
    app: RunningApp,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    first_chunk: bytes,
) -> None:
    headers = {
        "host": "riskgate.test",
        "content-type": content_type,
        "content-length": "4096",
        "x-api-key": app.credentials.api_key,
        "idempotency-key": new_key(),
    }
    events: list[dict[str, Any]] = [
        {"type": "http.request", "body": first_chunk, "more_body": True},
    ]

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass  # the client is gone; a server drops whatever is sent now

    hung_up, failed = requests_total(path, 499), requests_total(path, 500)
    with caplog.at_level(logging.INFO):
        await app.asgi(http_scope(path, headers), receive, send)  # type: ignore[arg-type]

    assert requests_total(path, 499) == hung_up + 1
    assert requests_total(path, 500) == failed
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    [access] = [r for r in caplog.records if r.name == "riskgate.access"]
    assert access.__dict__["status"] == 499

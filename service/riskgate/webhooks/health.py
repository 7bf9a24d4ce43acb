"""The worker's tiny HTTP server: ``/v1/health``, ``/v1/health/ready`` and ``/metrics``.

Plain asyncio, one request per connection: it serves kubelet probes and Prometheus scrapes,
nothing else, and must not pull a web framework's signal handling into the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import msgspec

from riskgate.observability.metrics import render_metrics

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
_MAX_HEAD = 8192


def _response(status: int, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def route(method: str, path: str, readiness: Readiness) -> bytes:
    """The full HTTP response for one request line."""
    path = path.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return _response(405, b'{"status":"method not allowed"}', "application/json")
    if path == "/v1/health":
        return _response(200, b'{"status":"ok"}', "application/json")
    if path == "/v1/health/ready":
        ready, details = readiness()
        return _response(200 if ready else 503, msgspec.json.encode(details), "application/json")
    if path == "/metrics":
        body, content_type = render_metrics()
        return _response(200, body, content_type)
    return _response(404, b'{"status":"not found"}', "application/json")


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, readiness: Readiness
) -> None:
    try:
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        parts = head[:_MAX_HEAD].split(b"\r\n", 1)[0].decode("latin-1").split()
        response = (
            route(parts[0], parts[1], readiness)
            if len(parts) == 3
            else _response(400, b"", "text/plain")
        )
        if parts and parts[0] == "HEAD":
            response = response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        writer.write(response)
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve_health(host: str, port: int, readiness: Readiness) -> asyncio.Server:
    return await asyncio.start_server(
        lambda r, w: _handle(r, w, readiness), host, port, limit=_MAX_HEAD
    )

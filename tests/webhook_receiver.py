"""A real HTTP/1.1 webhook receiver on 127.0.0.1 for tests and the benchmark.

asyncio + httptools, keep-alive, responses in request order. Each request is recorded with
its arrival and completion times; what it answers is decided by ``behaviour`` (a plain or
async function of the request), by default ``200 OK``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    status: int | None = None


Reply = tuple[int, dict[str, str], bytes]
Behaviour = Callable[[Received], "Reply | Awaitable[Reply]"]


def ok(_: Received) -> Reply:
    return 200, {}, b"ok"


class _Connection(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._previous: asyncio.Task[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._receiver.connections += 1
        self._receiver.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = Received(
            method=self._parser.get_method().decode(),
            path=self._url.decode("latin-1"),
            headers=self._headers,
            body=bytes(self._body),
        )
        self._receiver.received.append(request)
        keep_alive = self._parser.should_keep_alive()
        self._previous = asyncio.get_running_loop().create_task(
            self._respond(request, keep_alive, self._previous)
        )
        self._receiver.tasks.add(self._previous)
        self._previous.add_done_callback(self._receiver.tasks.discard)

    async def _respond(
        self, request: Received, keep_alive: bool, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.shield(previous)
        reply = self._receiver.behaviour(request)
        if inspect.isawaitable(reply):
            reply = await reply
        status, headers, body = reply  # type: ignore[misc]
        request.status, request.finished = status, time.monotonic()
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if not keep_alive:
            head.append("Connection: close")
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            if not keep_alive:
                transport.close()
        self._receiver.changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._receiver.transports.discard(self._transport)
        self._transport = None


class Receiver:
    def __init__(self, behaviour: Behaviour = ok) -> None:
        self.behaviour: Behaviour = behaviour
        self.received: list[Received] = []
        self.connections = 0
        self.changed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> Receiver:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), host, 0, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/riskgate"

    def answered(self) -> list[Received]:
        return [r for r in self.received if r.finished is not None]

    async def wait_for(
        self, count: int, timeout: float = 10.0, *, answered: bool = True
    ) -> list[Received]:
        """Until ``count`` requests were answered (or merely arrived), else AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.answered() if answered else self.received
            if len(got) >= count:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"wanted {count} requests, got {len(got)}: {got!r:.500}")
            self.changed.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.05)):
                    await self.changed.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for transport in list(self.transports):
                transport.close()
            await self._server.wait_closed()


def script(*replies: Reply, then: Reply = (200, {}, b"ok")) -> Behaviour:
    """Answer with ``replies`` in order, then ``then`` forever."""
    queue = list(replies)

    def behave(_: Any) -> Reply:
        return queue.pop(0) if queue else then

    return behave

"""The HTTP transport of webhook deliveries: httpx over httpcore, with the SSRF guard in the
socket layer.

Every new connection goes through :class:`GuardedBackend`: it resolves the host once, refuses
the connection if ANY resolved address is not public, dials only those checked addresses, and
checks the peer address of the socket it got before a byte is sent. URLs keep their host name,
so the ``Host`` header, TLS SNI and certificate checks use it, and keep-alive connections are
reused per origin. No proxies from the environment, no redirects (the client does not follow
them).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from riskgate.webhooks.ssrf import TargetRefused, check_address, resolve

KEEPALIVE_SECONDS = 30.0
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        for address in addresses:
            check_address(address)  # one bad address refuses the host: no partial trust
        return await self._dial(addresses, port, timeout, local_address, socket_options)

    async def _dial(
        self,
        addresses: list[str],
        port: int,
        timeout: float | None,  # noqa: ASYNC109
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self._check_peer(stream)
            return stream
        assert error is not None
        raise error

    @staticmethod
    def _check_peer(stream: httpcore.AsyncNetworkStream) -> None:
        peer = stream.get_extra_info("server_addr")
        try:
            check_address(str(peer[0]) if peer else "")
        except TargetRefused:
            # Never reached with the addresses checked above; kept as the last word on what
            # was actually connected to.
            sock = stream.get_extra_info("socket")
            if sock is not None:
                sock.close()
            raise

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("scheme", "unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


Origin = tuple[bytes, bytes, int]


class _OriginPool:
    """Keep-alive HTTP/1.1 connections to one origin, each used by one request at a time.

    O(1) per request: httpcore's own pool rescans every connection and queued request on each
    request, which costs more than the request itself at a hundred concurrent deliveries.
    """

    def __init__(self, limit: int) -> None:
        self.idle: deque[httpcore.AsyncHTTPConnection] = deque()
        self.slots = asyncio.Semaphore(limit)

    def checkout(self) -> httpcore.AsyncHTTPConnection | None:
        while self.idle:
            conn = self.idle.pop()  # the most recently used is the most likely still open
            if conn.is_idle() and not conn.has_expired():
                return conn
            self.discard(conn)
        return None

    @staticmethod
    def discard(conn: httpcore.AsyncHTTPConnection) -> None:
        # Closing an idle or broken HTTP/1.1 connection does no network round trip.
        asyncio.get_running_loop().create_task(conn.aclose())


class _ResponseStream(httpx.AsyncByteStream):
    """The response body; closing it hands the connection back to its pool (once)."""

    def __init__(
        self, stream: AsyncIterable[bytes], conn: httpcore.AsyncHTTPConnection, pool: _OriginPool
    ) -> None:
        self._stream = stream
        self._conn: httpcore.AsyncHTTPConnection | None = conn
        self._pool = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            if conn.is_idle():
                self._pool.idle.append(conn)
            else:
                await conn.aclose()
            self._pool.slots.release()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport on httpcore HTTP/1.1 connections whose sockets come from
    :class:`GuardedBackend`, pooled per origin (at most ``max_connections`` each).

    Exceptions are httpcore's (``httpcore.ConnectError``...) or :class:`TargetRefused`; the
    delivery code classifies both.
    """

    def __init__(self, *, allow_private: bool, max_connections: int) -> None:
        self._ssl = ssl.create_default_context()
        self._backend = GuardedBackend(allow_private=allow_private)
        self._limit = max_connections
        self._pools: dict[Origin, _OriginPool] = {}

    def _connection(self, origin: Origin) -> httpcore.AsyncHTTPConnection:
        return httpcore.AsyncHTTPConnection(
            origin=httpcore.Origin(*origin),
            ssl_context=self._ssl,
            keepalive_expiry=KEEPALIVE_SECONDS,
            http1=True,
            http2=False,
            network_backend=self._backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        origin: Origin = (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS[url.raw_scheme])
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _OriginPool(self._limit)
        await pool.slots.acquire()
        conn = pool.checkout() or self._connection(origin)
        try:
            response = await conn.handle_async_request(
                httpcore.Request(
                    method=request.method,
                    url=httpcore.URL(
                        scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                        target=url.raw_path,
                    ),
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=request.extensions,
                )
            )  # fmt: skip
        except BaseException:
            pool.slots.release()
            await asyncio.shield(conn.aclose())
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, conn, pool),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            while pool.idle:
                await pool.idle.pop().aclose()


def delivery_client(
    *, allow_private: bool, max_connections: int, timeout: float
) -> httpx.AsyncClient:
    """The one client a worker shares across deliveries (connection reuse)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=allow_private, max_connections=max_connections),
        # Receivers' cookies are never kept, so nothing travels from one delivery to the next.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )

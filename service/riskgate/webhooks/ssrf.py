"""SSRF guard: webhook targets must be public http(s) endpoints.

A URL is refused when its scheme is not http or https, or when ANY address its host resolves
to is not global unicast: loopback, private, link-local, multicast, unspecified, reserved,
documentation, benchmarking, shared (CGNAT), deprecated site-local, or a cloud metadata
endpoint. IPv4 addresses embedded in IPv6 (IPv4-mapped, 6to4, Teredo, NAT64) are judged as the
IPv4 address they carry. The check runs when a subscription is saved and again on every new
connection at delivery time, against the addresses actually dialled
(``riskgate.webhooks.transport``), so DNS rebinding between the two gains nothing.

The ranges are listed here rather than taken from ``ipaddress``'s ``is_private`` and
``is_global``: those tables differ between Python releases and miss ranges (``fec0::/10``,
``3fff::/20``), and a guard must not change with the interpreter. IPv6 is allowed only inside
the global unicast block ``2000::/3``, so whatever IANA has not assigned stays refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TypeAlias
from urllib.parse import urlsplit

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """The target may not be reached; ``reason`` is a bounded label, e.g. ``loopback``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _networks(*ranges: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(network), reason) for network, reason in ranges)


# The IANA special-purpose registries (RFC 6890 and its updates), every block that is not
# globally reachable unicast, with the bounded reason label each is refused with.
_DENIED_IPV4 = _networks(
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "reserved"),  # "this network"
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared"),  # carrier-grade NAT
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link_local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # and 255.255.255.255, broadcast
)
_DENIED_IPV6 = _networks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),  # local-use NAT64
    ("100::/64", "reserved"),  # discard-only
    ("fc00::/7", "private"),  # unique local
    ("fe80::/10", "link_local"),
    ("fec0::/10", "site_local"),  # deprecated, still routed inside some networks
    ("ff00::/8", "multicast"),
    ("2001::/23", "reserved"),  # IETF protocol assignments (Teredo is unwrapped before)
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be a webhook target, or None when it is a global unicast address."""
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(ip, ipaddress.IPv4Address):
        return next((reason for net, reason in _DENIED_IPV4 if ip in net), None)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return forbidden_reason(embedded)
    if ip.scope_id:
        return "link_local"
    denied = next((reason for net, reason in _DENIED_IPV6 if ip in net), None)
    if denied is None and ip not in _GLOBAL_UNICAST_V6:
        return "non_global"
    return denied


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0] if "%" in text else text)
    except ValueError:
        return None


def check_address(text: str) -> IPAddress:
    """The parsed address, or ``TargetRefused`` when it is not a public one."""
    ip = parse_ip(text)
    if ip is None:
        raise TargetRefused("invalid_address", f"{text!r} is not an IP address")
    if "%" in text:
        raise TargetRefused("link_local", f"{text} is a scoped (link-local) address")
    reason = forbidden_reason(ip)
    if reason is not None:
        raise TargetRefused(reason, f"{ip} is a {reason.replace('_', '-')} address")
    return ip


def split_target(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL, or ``TargetRefused``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("invalid_url", "the URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("scheme", "only http and https URLs can receive webhooks")
    host = parts.hostname
    if not host:
        raise TargetRefused("invalid_url", "the URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    if parse_ip(host) is not None:
        return [host]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_url(url: str, *, allow_private: bool) -> None:
    """Creation-time check: the scheme, and every address the host resolves to right now.

    A host that does not resolve (yet) is accepted: it cannot reach anything now, and every
    delivery checks again before connecting.
    """
    _, host, port = split_target(url)
    if allow_private:
        return
    try:
        addresses = await resolve(host, port)
    except OSError:
        return
    for address in addresses:
        check_address(address)

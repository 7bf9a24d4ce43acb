"""Which addresses a webhook may target."""

from __future__ import annotations

import ipaddress

import pytest

from riskgate.webhooks.ssrf import TargetRefused, check_address, forbidden_reason, split_target


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("fd00:ec2::254", "metadata"),
        ("fc00::1", "private"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "shared"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason
    with pytest.raises(TargetRefused):
        check_address(address)


# One address per block of the IANA special-purpose registries that is not global unicast,
# written out here (not read from the guard's own table) so that a block missing from the guard
# fails. Where a block's edge matters, its first and last addresses are both listed.
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.1.2.3", "reserved"),  # 0.0.0.0/8, "this network"
        ("0.255.255.255", "reserved"),
        ("100.127.255.255", "shared"),  # 100.64.0.0/10, CGNAT
        ("169.254.255.255", "link_local"),
        ("172.31.255.255", "private"),
        ("192.0.0.8", "reserved"),  # 192.0.0.0/24, IETF protocol assignments
        ("192.0.2.1", "documentation"),  # TEST-NET-1
        ("192.88.99.1", "reserved"),  # 6to4 relay anycast
        ("198.18.0.1", "benchmarking"),  # 198.18.0.0/15
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),  # TEST-NET-2
        ("203.0.113.9", "documentation"),  # TEST-NET-3
        ("239.255.255.255", "multicast"),
        ("255.255.255.255", "reserved"),  # broadcast
        ("::2", "non_global"),  # ::/96, the deprecated IPv4-compatible form
        ("64:ff9b:1::1", "private"),  # local-use NAT64
        ("100::1", "reserved"),  # discard-only
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"),  # fc00::/7
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link_local"),  # fe80::/10
        ("fec0::1", "site_local"),  # fec0::/10
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "site_local"),
        ("2001:2::1", "reserved"),  # 2001::/23, benchmarking inside it
        ("2001:10::1", "reserved"),  # ORCHID
        ("2001:db8::1", "documentation"),  # 2001:db8::/32
        ("3fff::1", "documentation"),  # 3fff::/20
        ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"),
        ("4000::1", "non_global"),  # outside 2000::/3: unassigned
        ("5f00::1", "non_global"),  # SRv6 SIDs
        ("1fff:ffff::1", "non_global"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo carrying 10.0.0.1
    ],
)
def test_every_block_that_is_not_global_unicast_is_refused(address: str, reason: str) -> None:
    with pytest.raises(TargetRefused):
        check_address(address)
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",
        "1.1.1.1",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above it
        "198.20.0.0",  # just above benchmarking
        "2000::1",  # the first global unicast address
        "3fff:1000::1",  # just above 3fff::/20
        "2001:200::1",  # just above 2001::/23
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (DNS64 networks)
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 of 8.8.8.8
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x", "http://", "http://:80/"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(TargetRefused):
        split_target(url)


def test_default_ports() -> None:
    assert split_target("https://Example.com/x") == ("https", "example.com", 443)
    assert split_target("http://example.com:8080/x") == ("http", "example.com", 8080)

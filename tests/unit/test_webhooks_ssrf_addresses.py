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
        ("100.64.0.1", "non_global"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # Python counts 240/4 as private
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


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
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

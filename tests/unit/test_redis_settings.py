"""RISKGATE_REDIS_SENTINELS and friends: parsed once, refused with the variable named."""

from __future__ import annotations

import pytest

from riskgate.redis_config import parse_sentinels
from riskgate.settings import Settings, SettingsError


def load(**values: str) -> Settings:
    base = {
        "RISKGATE_DATABASE_URL": "postgresql://riskgate@db/riskgate",
        "RISKGATE_REDIS_URL": "redis://:pw@unused:6379/2",
        "RISKGATE_JWT_SIGNING_KEY_FILE": "/run/secrets/jwt.pem",
    }
    return Settings.from_env({**base, **{f"RISKGATE_{k.upper()}": v for k, v in values.items()}})


def test_sentinel_mode_is_off_by_default_with_the_usual_master_name() -> None:
    settings = load()
    assert settings.redis_sentinels == ""
    assert settings.redis_sentinel_master == "mymaster"


def test_sentinels_parse_as_host_port_pairs_including_ipv6_and_spaces() -> None:
    assert parse_sentinels("sentinel-0.redis:26379, [fd00::1]:26380,10.0.0.3:1,") == [
        ("sentinel-0.redis", 26379),
        ("fd00::1", 26380),
        ("10.0.0.3", 1),
    ]
    assert load(redis_sentinels="a:1,b:2").redis_sentinels == "a:1,b:2"


@pytest.mark.parametrize(
    "entry", ["sentinel-0", "sentinel-0:", "sentinel-0:port", "a:99999", ":26379", "u@a:1", "a:1/x"]
)
def test_a_malformed_sentinel_address_names_the_variable(entry: str) -> None:
    with pytest.raises(
        SettingsError, match=f"RISKGATE_REDIS_SENTINELS: '{entry}' is not host:port"
    ):
        load(redis_sentinels=f"ok:26379,{entry}")


def test_sentinel_mode_needs_a_tcp_redis_url() -> None:
    with pytest.raises(SettingsError, match="RISKGATE_REDIS_URL: with RISKGATE_REDIS_SENTINELS"):
        load(redis_sentinels="a:1", redis_url="unix:///run/redis.sock")
    assert load(redis_url="unix:///run/redis.sock").redis_url.startswith("unix:")


def test_sentinel_mode_needs_a_master_name() -> None:
    with pytest.raises(SettingsError, match="RISKGATE_REDIS_SENTINEL_MASTER"):
        load(redis_sentinels="a:1", redis_sentinel_master=" ")

"""The operator's settings: read once from ``RISKGATE_OPERATOR_*`` variables, failing fast."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

PREFIX = "RISKGATE_OPERATOR_"
N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    api_url: str
    """``RISKGATE_OPERATOR_API_URL``: the riskgate service's base URL (required)."""
    client_id_file: Path
    """``RISKGATE_OPERATOR_CLIENT_ID_FILE``: a file holding the operator's OAuth2 client id."""
    client_secret_file: Path
    """``RISKGATE_OPERATOR_CLIENT_SECRET_FILE``: a file holding its client secret."""
    namespaces: tuple[str, ...] = ()
    """``RISKGATE_OPERATOR_NAMESPACES``: comma-separated namespaces to watch; empty: all."""
    port: int = 8080
    """``RISKGATE_OPERATOR_PORT``: serves ``/metrics`` and ``/healthz``."""
    rotation_check_seconds: float = 60.0
    """``RISKGATE_OPERATOR_ROTATION_CHECK_SECONDS``: how often each resource is re-checked
    (rotation due, overlap over, delivery health)."""
    workload_api_url: str = ""
    """``RISKGATE_OPERATOR_WORKLOAD_API_URL``: the base URL workloads reach the service at,
    written into each ApiClient's Secret (``api_url``, ``token_url``); empty: ``api_url``."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        values = os.environ if env is None else env

        def get(name: str) -> str:
            return values.get(PREFIX + name, "").strip()

        api_url = _api_url("API_URL", get("API_URL"))
        return cls(
            api_url=api_url,
            client_id_file=_file("CLIENT_ID_FILE", get("CLIENT_ID_FILE")),
            client_secret_file=_file("CLIENT_SECRET_FILE", get("CLIENT_SECRET_FILE")),
            namespaces=tuple(n.strip() for n in get("NAMESPACES").split(",") if n.strip()),
            port=_number("PORT", get("PORT") or "8080", int, 0, 65535),
            rotation_check_seconds=_number(
                "ROTATION_CHECK_SECONDS", get("ROTATION_CHECK_SECONDS") or "60", float, 0.5, 3600
            ),
            workload_api_url=_api_url("WORKLOAD_API_URL", get("WORKLOAD_API_URL") or api_url),
        )

    def client_credentials(self) -> tuple[str, str]:
        """Read on every token request, so a rotated mounted Secret is picked up."""
        return (
            self.client_id_file.read_text().strip(),
            self.client_secret_file.read_text().strip(),
        )


def _api_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{PREFIX}{name} must be an http(s) base URL, got {value!r}")
    return value.rstrip("/")


def _file(name: str, value: str) -> Path:
    if not value:
        raise SettingsError(f"{PREFIX}{name} is required (a path to a file)")
    path = Path(value)
    if not path.is_file():
        raise SettingsError(f"{PREFIX}{name}: {value} is not a readable file")
    return path


def _number(name: str, value: str, kind: type[N], low: N, high: N) -> N:
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{PREFIX}{name} must be between {low} and {high}, got {value}")
    return number

"""What every ``riskgate`` command shares: -h, settings errors reported at once, key files
named by their variable, ``--json`` on list commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from riskgate.cli import main
from riskgate.settings import Settings, SettingsError


def riskgate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "riskgate", *args],
        env={**clean, "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=lambda p: " ".join(p) or "riskgate")
def test_dash_h_prints_help_for_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_keys_help_says_which_keys_each_command_touches() -> None:
    shown = riskgate("keys", "-h").stdout
    assert "Token signing (RISKGATE_JWT_SIGNING_KEY_FILE" in shown
    assert "Webhook secret sealing (RISKGATE_WEBHOOK_ENCRYPTION_KEYS" in shown


def test_every_missing_setting_is_reported_in_one_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"RISKGATE_PORT": "eighty"})
    message = str(caught.value)
    for problem in (
        "RISKGATE_DATABASE_URL is required",
        "RISKGATE_REDIS_URL is required",
        "RISKGATE_JWT_SIGNING_KEY_FILE is required",
        "RISKGATE_PORT: Expected `int`",
    ):
        assert problem in message
    assert message.startswith("4 settings need fixing")


def test_the_api_names_the_variable_of_an_unreadable_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    run = riskgate(
        "api",
        RISKGATE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/x",
        RISKGATE_REDIS_URL="redis://127.0.0.1:1/0",
        RISKGATE_JWT_SIGNING_KEY_FILE=str(missing),
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: RISKGATE_JWT_SIGNING_KEY_FILE: cannot read key file {missing}: "
        "No such file or directory"
    )


def test_clients_list_json_is_one_array(database_url: str) -> None:
    run = riskgate("clients", "list", "--json", RISKGATE_DATABASE_URL=database_url)
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert isinstance(listed, list)
    assert all({"name", "scopes", "status", "active_key_prefixes"} <= set(c) for c in listed)

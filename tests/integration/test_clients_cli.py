"""``riskgate clients ...`` and ``riskgate keys generate-signing-key``, run as real processes.

The CLI and the app share the test database: what the CLI issues must work at the token
endpoint and as an X-API-Key at once, and what it disables, enables or rotates must take
effect at the very next request (the test settings cache nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import RunningApp, client_audit
from riskgate.auth.signing import thumbprint
from riskgate.webhooks.crypto import KeyRing

LIST = "/v1/events"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    return {**env, "RISKGATE_DATABASE_URL": database_url, "NO_COLOR": "1"}


async def riskgate(env: dict[str, str], *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "riskgate",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class Issued:
    client_id: str
    client_secret: str
    api_key: str

    @classmethod
    def parse(cls, out: str) -> Issued:
        fields = dict(re.findall(r"^(client_id|client_secret|api_key):\s+(\S+)$", out, re.M))
        assert set(fields) == {"client_id", "client_secret", "api_key"}, out
        return cls(**fields)


def new_name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def token_status(app: RunningApp, client_id: str, secret: str) -> tuple[int, str | None]:
    response = await app.anonymous.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    return response.status_code, response.json().get("error")


async def api_key_status(app: RunningApp, api_key: str) -> int:
    return (await app.anonymous.get(LIST, headers={"X-API-Key": api_key})).status_code


async def test_create_prints_credentials_once_that_work_and_are_stored_hashed(
    app: RunningApp, cli_env: dict[str, str], db: asyncpg.Connection[Any]
) -> None:
    name = new_name()
    run = await riskgate(
        cli_env, "clients", "create", "--name", name, "--scopes", "events:read score:write"
    )
    assert run.code == 0, run.err
    issued = Issued.parse(run.out)
    assert issued.client_id == name
    assert issued.client_secret not in run.err
    assert "only their hashes" in run.err

    assert await token_status(app, name, issued.client_secret) == (200, None)
    token = await app.anonymous.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": name,
            "client_secret": issued.client_secret,
        },
    )
    assert token.json()["scope"] == "score:write events:read"
    assert await api_key_status(app, issued.api_key) == 200

    client = await db.fetchrow("SELECT * FROM clients WHERE name = $1", name)
    assert client is not None
    assert client["secret_hash"].startswith("scrypt$")
    assert issued.client_secret not in client["secret_hash"]
    keys = await db.fetch(
        "SELECT row_to_json(k)::text AS row, k.key_hash, k.prefix "
        "FROM api_keys k WHERE k.client_ref = $1",
        client["id"],
    )
    assert len(keys) == 1
    assert issued.api_key not in keys[0]["row"]
    assert issued.client_secret not in keys[0]["row"]
    assert bytes(keys[0]["key_hash"]) != issued.api_key.encode()
    assert issued.api_key.startswith(keys[0]["prefix"])
    assert len(keys[0]["prefix"]) < len(issued.api_key) // 2
    everything = await db.fetchval(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM audit_log) t "
        "WHERE t.entity_id = $1::text",
        str(client["id"]),
    )
    assert issued.client_secret not in (everything or "")
    assert issued.api_key not in (everything or "")

    listing = await riskgate(cli_env, "clients", "list")
    assert listing.code == 0, listing.err
    [line] = [line for line in listing.out.splitlines() if line.startswith(name + "\t")]
    assert "\tactive\t" in line
    assert "events:read" in line
    assert "score:write" in line
    assert keys[0]["prefix"] in line
    assert issued.api_key not in listing.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--name", "Bad Name!", "--scopes", "events:read"], "--name must be", id="bad-name"
        ),
        pytest.param(["--name", "x", "--scopes", "events:read"], "--name must be", id="too-short"),
        pytest.param(
            ["--scopes", "events:read admin:all"], "unknown scope(s): admin:all", id="unknown-scope"
        ),
        pytest.param(
            ["--scopes", "events:read", "--rate-limit", "lots"], "--rate-limit", id="bad-rate"
        ),
    ],
)
async def test_create_refuses_bad_input_with_exit_2_and_writes_nothing(
    cli_env: dict[str, str], db: asyncpg.Connection[Any], args: list[str], message: str
) -> None:
    if "--name" not in args:
        args = ["--name", new_name(), *args]
    run = await riskgate(cli_env, "clients", "create", *args)
    assert run.code == 2, (run.out, run.err)
    assert message in run.err
    assert "Traceback" not in run.err
    assert "client_secret" not in run.out
    name = args[args.index("--name") + 1]
    assert await db.fetchval("SELECT count(*) FROM clients WHERE name = $1", name) == 0


async def test_duplicate_name_is_exit_2_and_keeps_the_first_clients_credentials(
    app: RunningApp, cli_env: dict[str, str]
) -> None:
    name = new_name()
    first = await riskgate(cli_env, "clients", "create", "--name", name, "--scopes", "events:read")
    assert first.code == 0, first.err
    again = await riskgate(cli_env, "clients", "create", "--name", name, "--scopes", "events:read")
    assert again.code == 2
    assert f"a client named '{name}' already exists" in again.err
    assert "client_secret" not in again.out
    assert await api_key_status(app, Issued.parse(first.out).api_key) == 200


async def test_disable_enable_and_rotate_take_effect_at_the_next_request(
    app: RunningApp, cli_env: dict[str, str]
) -> None:
    name = new_name()
    created = await riskgate(
        cli_env, "clients", "create", "--name", name, "--scopes", "events:read"
    )
    old = Issued.parse(created.out)

    disabled = await riskgate(cli_env, "clients", "disable", name)
    assert (disabled.code, disabled.out.strip()) == (0, f"{name} disabled")
    assert await token_status(app, name, old.client_secret) == (401, "invalid_client")
    assert await api_key_status(app, old.api_key) == 401
    listing = await riskgate(cli_env, "clients", "list")
    assert f"{name}\tdisabled\t" in listing.out
    again = await riskgate(cli_env, "clients", "disable", name)
    assert (again.code, again.out.strip()) == (0, f"{name} was already disabled")

    enabled = await riskgate(cli_env, "clients", "enable", name)
    assert (enabled.code, enabled.out.strip()) == (0, f"{name} enabled")
    assert await token_status(app, name, old.client_secret) == (200, None)
    assert await api_key_status(app, old.api_key) == 200

    rotated = await riskgate(cli_env, "clients", "rotate", name)
    assert rotated.code == 0, rotated.err
    new = Issued.parse(rotated.out)
    assert new.client_id == name
    assert (new.client_secret, new.api_key) != (old.client_secret, old.api_key)
    assert await token_status(app, name, old.client_secret) == (401, "invalid_client")
    assert await api_key_status(app, old.api_key) == 401
    assert await token_status(app, name, new.client_secret) == (200, None)
    assert await api_key_status(app, new.api_key) == 200


@pytest.mark.parametrize("command", ["disable", "enable", "rotate"])
async def test_commands_on_an_unknown_client_are_exit_2(
    cli_env: dict[str, str], command: str
) -> None:
    name = new_name()
    run = await riskgate(cli_env, "clients", command, name)
    assert run.code == 2
    assert f"no client named '{name}'" in run.err
    assert "client_secret" not in run.out


async def test_generate_signing_key_writes_a_private_0600_pem_and_never_overwrites(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "signing.pem"
    run = await riskgate(cli_env, "keys", "generate-signing-key", str(path))
    assert run.code == 0, run.err

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert f"(kid {thumbprint(key.public_key())})" in run.out

    again = await riskgate(cli_env, "keys", "generate-signing-key", str(path))
    assert again.code == 2
    assert "refusing to overwrite" in again.err
    assert path.read_bytes() == pem


# --- clients ensure: create-or-update for bootstrap jobs -----------------------------------------


def secret_file(tmp_path: Path, secret: str) -> Path:
    path = tmp_path / f"secret-{uuid.uuid4().hex[:6]}"
    path.write_text(secret + "\n")  # as `kubectl create secret --from-file` often stores it
    return path


async def ensure(env: dict[str, str], name: str, scopes: str, secret: Path, *more: str) -> Run:
    return await riskgate(
        env,
        "clients",
        "ensure",
        "--name",
        name,
        "--scopes",
        scopes,
        "--secret-file",
        str(secret),
        *more,
    )


async def test_ensure_creates_a_client_named_by_its_id_then_changes_only_what_changed(
    app: RunningApp, cli_env: dict[str, str], db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    name, old, new = new_name(), f"rgs_old_{uuid.uuid4().hex}", f"rgs_new_{uuid.uuid4().hex}"
    scopes, path = "events:read subscriptions:sync", secret_file(tmp_path, old)
    run = await ensure(cli_env, name, scopes, path)
    assert run.code == 0, run.err
    assert run.out.splitlines() == [f"client_id: {name}", f"{name} created"]
    assert old not in run.out + run.err
    assert await token_status(app, name, old) == (200, None)
    client = await db.fetchrow("SELECT * FROM clients WHERE name = $1", name)
    assert client is not None
    assert sorted(client["scopes"]) == ["events:read", "subscriptions:sync"]
    # Nobody would ever see an API key issued here, so none is.
    keys = await db.fetchval("SELECT count(*) FROM api_keys WHERE client_ref = $1", client["id"])
    assert keys == 0

    again = await ensure(cli_env, name, scopes, path)
    assert again.out.splitlines() == [f"client_id: {name}", f"{name} unchanged"]
    assert await db.fetchrow("SELECT * FROM clients WHERE name = $1", name) == client

    rotated = await ensure(cli_env, name, scopes, secret_file(tmp_path, new))
    assert rotated.out.splitlines() == [f"client_id: {name}", f"{name} updated: secret"]
    assert await token_status(app, name, old) == (401, "invalid_client")
    assert await token_status(app, name, new) == (200, None)
    audit = await client_audit(db, name)
    assert [(action, details.get("changed")) for action, details in audit] == [
        ("client.created", None),
        ("client.updated", ["secret"]),
    ]
    assert old not in json.dumps(audit)
    assert new not in json.dumps(audit)


async def test_two_ensure_processes_at_once_make_one_client_and_one_audit_row(
    app: RunningApp, cli_env: dict[str, str], db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    # Two hook pods of one release; the race between two updates is in test_clients_ensure.py.
    name, secret = new_name(), f"rgs_{uuid.uuid4().hex}"
    path = secret_file(tmp_path, secret)
    runs = await asyncio.gather(*(ensure(cli_env, name, "events:read", path) for _ in range(2)))
    assert [run.code for run in runs] == [0, 0], [run.err for run in runs]
    assert sorted(run.out.splitlines()[1] for run in runs) == [
        f"{name} created",
        f"{name} unchanged",
    ]
    assert await db.fetchval("SELECT count(*) FROM clients WHERE name = $1", name) == 1
    assert [action for action, _ in await client_audit(db, name)] == ["client.created"]
    assert await token_status(app, name, secret) == (200, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "No such file or directory", id="missing"),
        pytest.param("two words", "at least 16 characters, no spaces", id="weak"),
    ],
)
async def test_ensure_refuses_an_unusable_secret_file_and_writes_nothing(
    cli_env: dict[str, str],
    db: asyncpg.Connection[Any],
    tmp_path: Path,
    content: str | None,
    message: str,
) -> None:
    name, path = new_name(), tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    run = await ensure(cli_env, name, "events:read", path)
    assert run.code == 2, (run.out, run.err)
    assert message in run.err
    assert "Traceback" not in run.err
    assert await db.fetchval("SELECT count(*) FROM clients WHERE name = $1", name) == 0


# --- keys for bootstrap jobs: generated once, kept afterwards ------------------------------------


async def test_generate_signing_key_if_missing_writes_once_then_keeps_and_checks_the_key(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "signing.pem"
    first = await riskgate(cli_env, "keys", "generate-signing-key", "--if-missing", str(path))
    assert first.code == 0, first.err
    assert first.out.startswith(f"wrote {path} (kid ")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()

    again = await riskgate(cli_env, "keys", "generate-signing-key", "--if-missing", str(path))
    assert again.code == 0, again.err
    assert again.out == first.out.replace("wrote", "kept", 1)
    assert path.read_bytes() == pem

    path.write_text("not a key\n")
    broken = await riskgate(cli_env, "keys", "generate-signing-key", "--if-missing", str(path))
    assert broken.code == 2
    assert str(path) in broken.err
    assert "Traceback" not in broken.err
    assert path.read_text() == "not a key\n"


async def test_generate_encryption_key_to_a_file_writes_once_and_never_prints_the_key(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "ring"
    args = ("keys", "generate-encryption-key", "--key-id", "k1", "--output", str(path))
    first = await riskgate(cli_env, *args, "--if-missing")
    assert (first.code, first.out.strip()) == (0, f"wrote {path} (current key k1)"), first.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entry = path.read_text()
    assert KeyRing.parse(entry).current_key_id == "k1"
    assert entry.strip().split(":")[1] not in first.out + first.err

    kept = await riskgate(cli_env, *args, "--if-missing")
    assert (kept.code, kept.out.strip()) == (0, f"kept {path} (current key k1)"), kept.err
    refused = await riskgate(cli_env, *args)
    assert refused.code == 2
    assert "refusing to overwrite" in refused.err
    assert path.read_text() == entry

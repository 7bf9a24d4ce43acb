"""Every shell example in README.md, run as a user would paste it into one terminal.

One real `riskgate dev` serves a temporary directory laid out like a checkout: `.venv` (a link
to the interpreter's environment) and the data directory `./.riskgate`, so the README's own
`eval "$(.venv/bin/riskgate dev env)"` and `export PATH="$PWD/.venv/bin:$PATH"` are what set up
the shell; nothing is exported for it beforehand (no RISKGATE_* variable reaches it).

The runnable blocks run in README order in ONE bash session (`set -euo pipefail`), because
later blocks use what earlier ones set, as in a user's terminal: the environment and PATH from
the first, `$TOKEN` from "Try it". Each block's output goes to its own file, so a failure names
its block. The only rewrite is the README's literal `127.0.0.1:8000` to the port this test's
`riskgate dev` listens on. curl prints a refusal and still exits 0, so every JSON document a
curl block prints is checked not to be an RFC 9457 problem, and the key fields the README shows
are checked too. Every other block is listed in SKIPPED with why it cannot run here, and a test
fails when a block is neither run nor listed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dev_process import running_dev

README = Path(__file__).resolve().parents[2] / "README.md"
README_ADDRESS = "127.0.0.1:8000"

# A stable prefix of each block that cannot run against a local `riskgate dev`, and why.
SKIPPED: dict[str, str] = {
    "scripts/dev ": "starts `riskgate dev` itself and runs until Ctrl-C (the stack this test runs)",
    "scripts/test ": "the whole test command, this test included",
    "riskgate clients create --name checkout": (
        "a synopsis: [optional] flags and `|` between alternative subcommands"
    ),
    "riskgate clients ensure --name riskgate-operator": (
        "a synopsis: [optional] flags, and a secret file a Kubernetes Secret mounts"
    ),
    "RISKGATE_DATABASE_URL=postgresql://riskgate_api@…": (
        "a placeholder URL; `riskgate audit verify` runs in the audit heads block"
    ),
    "RISKGATE_REDIS_SENTINELS=": "settings for a Redis Sentinel deployment, not commands",
    "RISKGATE_DATABASE_URL=... RISKGATE_REDIS_URL=...": (
        "placeholder settings; `riskgate dev` runs the worker this block starts"
    ),
    "docker build": "needs a Docker daemon and a registry",
    "helm install riskgate charts/riskgate -n riskgate --create-namespace": "needs a cluster",
    "kubectl create namespace riskgate": "needs a cluster and external databases",
    "skaffold dev": "needs a cluster and runs until Ctrl-C",
    "kubectl apply -f k8s/examples/webhooksubscription.yaml": "needs a cluster with the operator",
    "kubectl -n payments annotate": "needs a cluster with the operator",
    "kubectl apply -f k8s/examples/apiclient.yaml": "needs a cluster with the operator",
}

Output = str
Check = Callable[[Output], None]


def _json_documents(text: str) -> list[Any]:
    """The JSON documents curl printed back to back (a body has no trailing newline)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


def _skip_space(text: str, at: int) -> int:
    return len(text) - len(text[at:].lstrip())


def _no_problems(documents: list[Any]) -> None:
    problems = [d for d in documents if isinstance(d, dict) and isinstance(d.get("status"), int)]
    assert not problems, f"the README's request was refused: {problems}"


def _check_env_block(output: Output) -> None:
    assert "demo-app" in output
    assert "client_secret: demo-secret" in output


def _check_try_it(output: Output) -> None:
    documents = _json_documents(output)
    _no_problems(documents)
    [decision] = documents
    assert (decision["event_id"], decision["score"], decision["action"]) == (
        "bk-1001",
        38.5,
        "review",
    )
    assert decision["score_version"] == "v0_rules"


def _check_rules(output: Output) -> None:
    steps, listed = output.split("\n[", 1)
    assert "already" not in steps, steps  # each step changes what its comment says
    states = {v["version"]: v["status"] for v in _json_documents("[" + listed)[0]}
    assert states == {"v0_rules": "active", "v1_heavy_geo": "retired"}, states


def _check_accounts(output: Output) -> None:
    documents = _json_documents(output)
    _no_problems(documents)
    debit, statement = documents  # the account's id went into $ACCOUNT
    assert debit["status"] == "approved"
    assert (statement["account_id"], statement["customer_ref"]) == (
        debit["account_id"],
        "cust_7f3a91",
    )
    assert statement["balance"] == "975.00"


def _check_audit(output: Output) -> None:
    assert output.startswith("audit chain intact:"), output
    assert "against the heads in audit-heads-" in output, output


def _check_subscription(output: Output) -> None:
    documents = _json_documents(output)
    _no_problems(documents)
    [subscription] = documents
    assert subscription["secret"].startswith("whsec_")
    assert subscription["event_types"] == ["decision.created", "transaction.flagged"]


# A stable prefix of each block this test runs, with what its output must show.
RUN: dict[str, Check] = {
    'eval "$(.venv/bin/riskgate dev env)"': _check_env_block,
    "TOKEN=$(curl -sS -X POST http://127.0.0.1:8000/oauth2/token": _check_try_it,
    "riskgate rules create v1_heavy_geo": _check_rules,
    "ACCOUNT=$(curl -sS -X POST http://127.0.0.1:8000/v1/accounts": _check_accounts,
    'heads="audit-heads-': _check_audit,
    "curl -sS -X POST http://127.0.0.1:8000/v1/webhooks/subscriptions": _check_subscription,
}


def _shell_blocks() -> list[str]:
    return re.findall(r"^```(?:sh|bash)\n(.*?)^```", README.read_text(), re.S | re.M)


def _entries_matching(block: str) -> list[str]:
    return [prefix for prefix in [*SKIPPED, *RUN] if block.startswith(prefix)]


def test_every_readme_shell_block_is_run_or_skipped_with_a_reason() -> None:
    blocks = _shell_blocks()
    assert len(blocks) > 10  # the parser still finds the README's examples
    unclassified = [b for b in blocks if len(_entries_matching(b)) != 1]
    assert not unclassified, f"run these in RUN or give a reason in SKIPPED: {unclassified}"
    stale = [p for p in [*SKIPPED, *RUN] if not any(b.startswith(p) for b in blocks)]
    assert not stale, f"entries that match no README block: {stale}"


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A directory laid out like a checkout, with `riskgate dev` serving `./.riskgate`."""
    (tmp_path / ".venv").symlink_to(sys.prefix)
    with running_dev(tmp_path / "dev.log", cwd=tmp_path) as (base, _):
        yield tmp_path, int(base.rsplit(":", 1)[1])


def _session(blocks: list[str], port: int, outputs: Path) -> str:
    """One bash script: each block in braces (so what it sets stays set), output to its file."""
    parts = ["set -euo pipefail"]
    for index, block in enumerate(blocks):
        rewritten = block.replace(README_ADDRESS, f"127.0.0.1:{port}")
        out, err, done = (shlex.quote(f"{outputs}/{index}.{end}") for end in ("out", "err", "done"))
        parts.append(f"{{\n{rewritten}\n}} > {out} 2> {err}")
        parts.append(f": > {done}")
    return "\n".join(parts) + "\n"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""  # a block after the failed one never ran


@pytest.mark.slow
def test_readme_examples_run_as_written(checkout: tuple[Path, int]) -> None:
    directory, port = checkout
    blocks = [b for b in _shell_blocks() if set(_entries_matching(b)) & set(RUN)]
    outputs = directory / "outputs"
    outputs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    run = subprocess.run(
        ["bash", "-c", _session(blocks, port, outputs)],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    for index, block in enumerate(blocks):
        output, errors = _read(outputs / f"{index}.out"), _read(outputs / f"{index}.err")
        assert (outputs / f"{index}.done").exists(), (
            f"README block failed (bash exit {run.returncode}):\n{block}\n"
            f"stdout:\n{output}\nstderr:\n{errors}{run.stderr}"
        )
        [check] = [RUN[prefix] for prefix in _entries_matching(block) if prefix in RUN]
        check(output)

"""`riskgate dev`, the README's first command, run as a real process on real ports."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from dev_process import running_dev, wait_until_ready

from riskgate_dev.embedded import free_port_pair

pytestmark = pytest.mark.slow


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    log = tmp_path / "dev.log"
    with running_dev(log, "--data-dir", str(tmp_path / "data")) as (base, process):
        yield base, log, process


def test_dev_serves_the_readme_flow_and_stops_cleanly(
    dev_stack: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, log, process = dev_stack
    banner = log.read_text()
    assert "curl" in banner
    assert "demo-app" in banner

    token = httpx.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "demo-app",
              "client_secret": "demo-secret", "scope": "score:write events:read webhooks:write"},
    ).json()["access_token"]  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    scored = httpx.post(
        f"{base}/v1/score",
        headers={**auth, "Idempotency-Key": "dev-test-1"},
        json={"event_id": "bk-1001", "source": "flight",
              "signals": {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0}},
    )  # fmt: skip
    assert scored.status_code == 201, scored.text
    assert (scored.json()["score"], scored.json()["action"]) == (38.5, "review")

    full = httpx.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "demo-app",
              "client_secret": "demo-secret"},
    ).json()["access_token"]  # fmt: skip
    debit = httpx.post(
        f"{base}/v1/transactions",
        headers={"Authorization": f"Bearer {full}", "Idempotency-Key": "dev-test-2"},
        json={"account_id": 1, "amount": "25.00", "currency": "GBP"},
    )
    assert debit.status_code == 201, debit.text
    assert debit.json()["status"] == "approved"
    statement = httpx.get(
        f"{base}/v1/accounts/1/statement", headers={"Authorization": f"Bearer {full}"}
    )
    assert statement.json()["balance"] == "99975.00"

    port = int(base.rsplit(":", 1)[1])
    wait_until_ready(f"http://127.0.0.1:{port + 1}", process, log)  # the webhook worker

    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running after Ctrl-C: {[p.cmdline() for p in alive]}"


def _riskgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "riskgate", *args],
        env={**clean, "NO_COLOR": "1", **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _exported(lines: str) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export "))[0] for line in lines.splitlines()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_dev_env_and_credentials_reach_the_running_stack_which_owns_its_data_dir(
    dev_stack: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, log, process = dev_stack
    data = log.parent / "data"
    second = _riskgate("dev", "--port", str(free_port_pair()), "--data-dir", str(data))
    assert second.returncode != 0
    assert f"another riskgate dev (pid {process.pid}) uses {data}" in second.stderr
    assert "starting PostgreSQL" not in second.stdout

    printed = _riskgate("dev", "env", "--data-dir", str(data))
    assert printed.returncode == 0, printed.stderr
    env = _exported(printed.stdout)
    assert env["RISKGATE_DATABASE_URL"] in log.read_text()  # the banner shows them too
    if os.geteuid() == 0:  # postgres refuses root: what dev did to the machine is said
        assert "riskgate dev: chown -R" in log.read_text()
    listed = _riskgate("clients", "list", "--json", env=env)
    assert [c["name"] for c in json.loads(listed.stdout)] == ["demo-app"], listed.stderr
    assert _riskgate("rules", "list", env=env).stdout.startswith("v0_rules\tactive")

    again = _riskgate("dev", "credentials", "--data-dir", str(data)).stdout
    assert "client_secret: demo-secret" in again
    api_key = re.search(r"^api_key:\s+(\S+)$", again, re.M)
    assert api_key, again
    events = httpx.get(f"{base}/v1/events", headers={"X-API-Key": api_key[1]})
    assert events.status_code == 200, events.text


def test_dev_refuses_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _riskgate("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert run.returncode != 0
    assert f"port {port} is in use" in run.stderr
    assert not (tmp_path / "data" / "postgres").exists()


def test_dev_restarts_a_worker_that_dies(
    dev_stack: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    """The API's readiness follows the worker: degraded while it is gone, ready once back."""
    base, log, process = dev_stack
    worker_base = f"http://127.0.0.1:{int(base.rsplit(':', 1)[1]) + 1}"
    wait_until_ready(worker_base, process, log)
    wait_until_ready(base, process, log, showing={"status": "ready", "worker": "up"})
    [worker] = [p for p in psutil.Process(process.pid).children() if p.cmdline()[-1:] == ["worker"]]
    worker.kill()
    worker.wait(timeout=10)
    # The supervisor waits a second before the restart: the API says so meanwhile, still 200.
    wait_until_ready(base, process, log, showing={"status": "degraded", "worker": "down"})
    deadline = time.monotonic() + 60
    while "restarting it (1/3)" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    wait_until_ready(worker_base, process, log)
    wait_until_ready(base, process, log, showing={"status": "ready", "worker": "up"})
    assert process.poll() is None


def test_dev_stops_non_zero_when_the_worker_keeps_dying(
    dev_stack: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, log, process = dev_stack
    worker_port = int(base.rsplit(":", 1)[1]) + 1
    wait_until_ready(f"http://127.0.0.1:{worker_port}", process, log)
    [worker] = [p for p in psutil.Process(process.pid).children() if p.cmdline()[-1:] == ["worker"]]
    servers = [p for p in psutil.Process(process.pid).children() if p.pid != worker.pid]
    with socket.socket() as squatter:  # every restarted worker now fails to bind its port
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        worker.kill()
        worker.wait(timeout=10)
        squatter.bind(("127.0.0.1", worker_port))
        squatter.listen()
        assert process.wait(timeout=90) == 1
    assert "the webhook worker exited 4 times in 60 s" in log.read_text()
    assert "stopping riskgate dev" in log.read_text()
    _, alive = psutil.wait_procs(servers, timeout=15)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"

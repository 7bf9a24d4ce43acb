"""`riskgate dev`, the README's first command, run as a real process on real ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from riskgate_dev.embedded import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    log = (tmp_path / "dev.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "riskgate", "dev", "--port", str(port), "--data-dir",
         str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base, process, tmp_path / "dev.log")
        yield base, tmp_path / "dev.log", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        log.close()


def _wait_until_ready(base: str, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"riskgate dev exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{base}/v1/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"riskgate dev not ready in 60 s:\n{log.read_text()}")


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
    _wait_until_ready(f"http://127.0.0.1:{port + 1}", process, log)  # the webhook worker

    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running after Ctrl-C: {[p.cmdline() for p in alive]}"

"""A real `riskgate dev` process on a free port, for the tests that run it as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from riskgate_dev.embedded import free_port_pair


@contextmanager
def running_dev(
    log_path: Path, *args: str, cwd: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`riskgate dev --port P ARGS`, ready, without our RISKGATE_* settings; Ctrl-C after."""
    port = free_port_pair()  # dev serves the worker's health on port + 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "riskgate", "dev", "--port", str(port), *args],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, log_path)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        log.close()


def wait_until_ready(base: str, process: subprocess.Popen[str], log: Path) -> None:
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

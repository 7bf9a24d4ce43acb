"""A real `riskgate dev` process on a free port, for the tests that run it as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
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


def wait_until_ready(
    base: str,
    process: subprocess.Popen[str],
    log: Path,
    showing: Mapping[str, str] | None = None,
) -> None:
    """Poll ``base``'s readiness until it answers 200 and, given ``showing``, a body holding
    those fields (e.g. ``{"worker": "down"}``, which is 200 too: degraded)."""
    wanted = dict(showing or {})
    last: dict[str, object] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"riskgate dev exited:\n{log.read_text()}"
        try:
            response = httpx.get(f"{base}/v1/health/ready", timeout=1)
        except httpx.TransportError:
            response = None
        if response is not None:
            last = response.json()
            if response.status_code == 200 and wanted.items() <= last.items():
                return
        time.sleep(0.05)  # short: a worker restart's down window lasts about a second
    raise AssertionError(
        f"{base} not ready{f' with {wanted}' if wanted else ''} in 60 s (last: {last}):\n"
        f"{log.read_text()}"
    )

"""The embedded Postgres/Redis servers really start, answer, survive a crash and stop."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from riskgate_dev.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    free_port,
    free_port_pair,
    postgres_bin_dir,
)

SERVICE_DIR = Path(__file__).resolve().parents[1] / "service"


def psql(url: str, sql: str) -> str:
    """Run the bundled psql against a connection URL (TCP) and return unaligned output."""
    result = subprocess.run(
        [str(postgres_bin_dir() / "psql"), "-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def redis_ping(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path / "pg", fsync="off")
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def test_free_port_is_bindable_and_not_repeated() -> None:
    first, second = free_port(), free_port()
    assert first != second
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", first))


def test_free_port_pair_gives_two_bindable_ports_none_handed_out_again() -> None:
    port = free_port_pair()
    with socket.socket() as api, socket.socket() as worker:
        api.bind(("127.0.0.1", port))
        worker.bind(("127.0.0.1", port + 1))
    assert {free_port() for _ in range(20)}.isdisjoint({port, port + 1})


def test_postgres_serves_tcp_and_survives_kill(postgres: EmbeddedPostgres) -> None:
    assert not postgres.running
    postgres.start()
    assert postgres.running
    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    assert psql(postgres.url, "select 1") == "1"
    assert psql(postgres.url, "show max_connections") == "200"
    assert psql(postgres.url, "show fsync") == "off"

    pid = postgres.pid
    postgres.start()  # idempotent
    assert postgres.pid == pid

    psql(postgres.url, "create table survivors (id int primary key)")
    psql(postgres.url, "insert into survivors values (7)")
    postgres.kill()
    assert not postgres.running
    assert pid is not None
    assert gone(pid)
    assert (postgres.data_dir / "postmaster.pid").exists()  # stale, left by the crash

    postgres.start()
    assert postgres.pid != pid
    assert psql(postgres.url, "select id from survivors") == "7"

    postgres.create_database("riskgate_test")
    postgres.create_database("riskgate_test")  # already exists: fine
    assert psql(postgres.url_for("riskgate_test"), "select current_database()") == "riskgate_test"

    postgres.restart()
    assert psql(postgres.url, "select count(*) from survivors") == "1"
    postgres.stop()
    postgres.stop()  # idempotent
    assert not postgres.running
    assert not (postgres.data_dir / "postmaster.pid").exists()  # clean shutdown


def test_postgres_start_failure_reports_log_tail(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", shared_buffers="not-a-size")
    with pytest.raises(EmbeddedServerError, match="invalid value for parameter"):
        pg.start()
    assert not pg.running


def test_redis_ping_kill_restart(redis_server: EmbeddedRedis) -> None:
    redis_server.start()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_ping("127.0.0.1", redis_server.port) == b"+PONG\r\n"

    pid = redis_server.pid
    redis_server.kill()
    assert not redis_server.running
    assert pid is not None
    assert gone(pid)
    with pytest.raises(ConnectionRefusedError):
        redis_ping("127.0.0.1", redis_server.port)

    redis_server.start()
    assert redis_ping("127.0.0.1", redis_server.port) == b"+PONG\r\n"
    redis_server.restart()
    assert redis_server.ping()
    redis_server.stop()
    redis_server.stop()  # idempotent
    assert not redis_server.running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_redis_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(SERVICE_DIR)!r})
        from pathlib import Path
        from riskgate_dev.embedded import EmbeddedRedis
        server = EmbeddedRedis(Path({str(tmp_path / "orphan")!r}))
        server.start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            pid = int(parent.stdout.readline())
        finally:
            parent.kill()
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)

#!/usr/bin/env python3
"""Load-test riskgate on one machine: embedded PostgreSQL + Redis, the real API, wrk.

    python bench/run.py                                  # score scenario, 2 workers, -t2 -c64 -d20s
    python bench/run.py --workers 3 --connections 128 --duration 30s
    python bench/run.py --pool-max 20 --log-level WARNING
    python bench/run.py --pg-setting synchronous_commit=off   # NOT production: labelled as such

What it does, in order:

1. starts ``riskgate_dev.embedded.EmbeddedPostgres`` and ``EmbeddedRedis`` in a temporary directory
   (PostgreSQL defaults as shipped: fsync on, synchronous_commit on),
2. creates the database and applies the migrations (``riskgate.migrate.migrate``),
3. starts ``riskgate api --workers N`` as a subprocess, configured only through ``RISKGATE_*``
   environment variables, exactly as production runs it (uvicorn + uvloop + httptools),
4. waits for ``GET /v1/health/ready``, warms up with a short wrk run, then runs wrk for the
   measured duration with the scenario's Lua script,
5. checks the result is honest: every 201 the load generator saw is a row in the database, and
   nothing was stored that was never sent,
6. prints req/s, p50/p95/p99, errors, the CPU time each process group used, and (with
   ``--sample-waits``) what the API's database sessions were waiting on,
7. tears everything down (also on Ctrl-C), unless ``--keep``: then the stack stays up until Ctrl-C.

Only the standard library and riskgate itself (plus its dependencies psutil and asyncpg) are used;
the load generator is ``wrk`` (``apt-get install -y wrk``).

Scenarios are entries of ``SCENARIOS``: a Lua script beside this file plus a function that counts
what the run stored. ``transactions`` can be added the same way (its setup opens the accounts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from riskgate.migrate import migrate
from riskgate_dev.embedded import EmbeddedPostgres, EmbeddedRedis, free_port

BENCH_DIR = Path(__file__).resolve().parent
DATABASE = "riskgate"
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------------------- scenarios


Prepare = Callable[[asyncpg.Connection, str], Awaitable[list[str]]]
"""Data a scenario needs before the load, for the bench client (by name); returns the extra
arguments its Lua script takes after the run id and API key."""


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    """Lua file in bench/; it receives the run id and the API key as its first arguments."""
    count_stored: Callable[[asyncpg.Connection, str], Awaitable[int]]
    """Rows the run with this id stored (what the 201s must match)."""
    scopes: str = "score:write"
    prepare: Prepare | None = None


async def _count_events(conn: asyncpg.Connection, run_id: str) -> int:
    prefix = f"bench-{run_id}-t"
    # The prefix has no LIKE metacharacters (run ids are [a-z0-9-]), but escape anyway.
    pattern = re.sub(r"([\\%_])", r"\\\1", prefix) + "%"
    return int(await conn.fetchval("SELECT count(*) FROM events WHERE event_id LIKE $1", pattern))


async def _count_transactions(conn: asyncpg.Connection, run_id: str) -> int:
    """Transactions of this run (one per claimed key), after checking the ledger adds up."""
    broken = await conn.fetchval(
        """SELECT count(*) FROM accounts a
           WHERE a.opening_balance_minor - a.balance_minor <> coalesce(
               (SELECT sum(amount_minor) FROM transactions t
                WHERE t.account_id = a.id AND t.status = 'approved'), 0)"""
    )
    if broken:
        raise SystemExit(f"LEDGER MISMATCH on {broken} account(s)")
    pattern = re.sub(r"([\\%_])", r"\\\1", f"bench-{run_id}-t") + "%"
    claimed = await conn.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE key LIKE $1", pattern
    )
    return int(claimed)


DEBIT_BALANCE_MINOR = 10_000_000_00  # 10,000,000.00 GBP: no run can drain it at 1.00 a debit


def _open_accounts(count: int) -> Prepare:
    async def prepare(conn: asyncpg.Connection, client_name: str) -> list[str]:
        first = await conn.fetchval(
            """INSERT INTO accounts (client_id, customer_ref, currency, balance_minor,
                                     opening_balance_minor, created_at)
               SELECT c.id, 'bench-' || g, 'GBP', $2, $2, now()
               FROM clients c, generate_series(1, $3) AS g WHERE c.name = $1
               RETURNING id""",
            client_name, DEBIT_BALANCE_MINOR, count,
        )  # fmt: skip
        return [str(first), str(count)]

    return prepare


SCENARIOS: dict[str, Scenario] = {
    "score": Scenario(name="score", script="score.lua", count_stored=_count_events),
    "debit-spread": Scenario(
        name="debit-spread",
        script="debit.lua",
        count_stored=_count_transactions,
        scopes="transactions:write",
        prepare=_open_accounts(1000),
    ),
    "debit-hot": Scenario(
        name="debit-hot",
        script="debit.lua",
        count_stored=_count_transactions,
        scopes="transactions:write",
        prepare=_open_accounts(1),
    ),
}


# --------------------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGTERMs the child if this script dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _stop_group(proc: subprocess.Popen[Any], sig: signal.Signals, timeout: float) -> None:
    """Signal the process group ``proc`` leads; SIGKILL the group if it outlives ``timeout``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    # uvicorn's workers are in the same group; make sure none is left behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


class CpuMeter:
    """CPU seconds used by each process group (postgres, redis, api, wrk) over an interval."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self._groups = groups
        self._start = {name: _cpu_seconds(procs) for name, procs in groups.items()}
        self._host = psutil.cpu_times()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self._t0
        host = psutil.cpu_times()

        def _busy(t: Any) -> float:
            return sum(t) - t.idle - t.iowait - getattr(t, "steal", 0.0)

        busy = _busy(host) - _busy(self._host)
        out: dict[str, Any] = {"elapsed_s": round(elapsed, 2)}
        for name, procs in self._groups.items():
            end = _cpu_seconds(procs)
            used = sum(end[pid] - self._start[name].get(pid, 0.0) for pid in end)
            out[name] = round(used / elapsed, 3)  # cores
        out["host_busy"] = round(busy / elapsed, 3)
        out["host_iowait"] = round((host.iowait - self._host.iowait) / elapsed, 3)
        # On a VM: time the hypervisor gave our vCPUs to someone else (not in host_busy).
        out["host_steal"] = round(
            (getattr(host, "steal", 0.0) - getattr(self._host, "steal", 0.0)) / elapsed, 3
        )
        return out


# ------------------------------------------------------------------------------ wait-event sampler


class WaitSampler(threading.Thread):
    """Samples pg_stat_activity for the API's sessions every ``interval`` seconds.

    Each sample classifies every riskgate-api backend: idle (waiting for the app), on CPU
    (active, no wait event), or waiting (wait_event_type/wait_event: Lock/transactionid is a
    row lock such as the audit chain head, IO/WALSync the commit's fsync, LWLock/WALWrite...).
    """

    QUERY = """
        SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), left(query, 40)
        FROM pg_stat_activity
        WHERE application_name = 'riskgate-api' AND backend_type = 'client backend'
          AND pid <> pg_backend_pid()
    """

    def __init__(self, dsn: str, interval: float = 0.02) -> None:
        super().__init__(name="wait-sampler", daemon=True)
        self._dsn = dsn
        self._interval = interval
        self._halt = threading.Event()
        self.samples = 0
        self.counts: Counter[str] = Counter()
        self.error: str | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._loop())
        except Exception as exc:  # report, never break the benchmark
            self.error = f"{type(exc).__name__}: {exc}"

    async def _loop(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "bench-sampler"}
        )
        try:
            while not self._halt.is_set():
                rows = await conn.fetch(self.QUERY)
                self.samples += 1
                for state, wtype, wevent, _query in rows:
                    if state != "active":
                        key = f"{state} ({wtype}:{wevent})" if wtype else state
                    elif wtype:
                        key = f"active, waiting {wtype}:{wevent}"
                    else:
                        key = "active, on CPU"
                    self.counts[key] += 1
                await asyncio.sleep(self._interval)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def report(self) -> list[tuple[str, float]]:
        """(state, average number of sessions in it) per sample, most common first."""
        if not self.samples:
            return []
        return [(k, v / self.samples) for k, v in self.counts.most_common()]


# ------------------------------------------------------------------------------------------- stack


@dataclass
class Stack:
    base_url: str
    dsn: str
    superuser_dsn: str
    api: subprocess.Popen[bytes]
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    api_log: Path
    data_dir: Path
    api_key: str = ""
    script_args: list[str] = field(default_factory=list)
    """What the scenario's prepare step returned, passed to its Lua script."""
    groups: dict[str, list[psutil.Process]] = field(default_factory=dict)


def _api_env(
    args: argparse.Namespace,
    postgres: EmbeddedPostgres,
    redis: EmbeddedRedis,
    port: int,
    data_dir: Path,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKGATE_", "OTEL_"))}
    env.update(
        {
            "RISKGATE_DATABASE_URL": postgres.url_for(DATABASE),
            "RISKGATE_REDIS_URL": redis.url,
            "RISKGATE_HOST": HOST,
            "RISKGATE_PORT": str(port),
            "RISKGATE_WORKERS": str(args.workers),
            "RISKGATE_LOG_LEVEL": args.log_level,
            # Inside the run's directory instead of a fresh mkdtemp that nobody removes.
            "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics"),
        }
    )
    if args.pool_max is not None:
        env["RISKGATE_DB_POOL_MAX_SIZE"] = str(args.pool_max)
    if args.pool_min is not None:
        env["RISKGATE_DB_POOL_MIN_SIZE"] = str(args.pool_min)
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _riskgate(args: list[str], env: dict[str, str]) -> str:
    """Run a ``riskgate`` operator command, as an operator would; returns its stdout."""
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "riskgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"riskgate {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _provision_client(
    env: dict[str, str], data_dir: Path, run_id: str, rate_limit: str, scopes: str
) -> str:
    """Signing key + a client with the scenario's scopes, through the CLI; returns its API key."""
    key_file = data_dir / "jwt-signing-key.pem"
    if not key_file.exists():
        _riskgate(["keys", "generate-signing-key", str(key_file)], env)
    env["RISKGATE_JWT_SIGNING_KEY_FILE"] = str(key_file)
    out = _riskgate(
        [
            "clients",
            "create",
            "--name",
            f"bench-{run_id}",
            "--scopes",
            scopes,
            "--rate-limit",
            rate_limit,
        ],
        env,
    )
    match = re.search(r"^api_key:\s*(\S+)", out, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no api_key in the output of riskgate clients create:\n{out}")
    return match.group(1)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"riskgate api exited with {proc.returncode}; log:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/v1/health/ready", timeout=2) as resp:  # noqa: S310
                body = json.loads(resp.read())
                if resp.status == 200 and body.get("status") == "ready":
                    return
                last = str(body)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise SystemExit(f"riskgate api not ready after {timeout:.0f}s ({last}); log:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_stack(args: argparse.Namespace, scenario: Scenario, run_id: str) -> Iterator[Stack]:
    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="riskgate-bench-")) if own_dir else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    pg_settings = dict(item.split("=", 1) for item in args.pg_setting)
    postgres = EmbeddedPostgres(data_dir / "postgres", **pg_settings)
    redis = EmbeddedRedis(data_dir / "redis")
    api: subprocess.Popen[bytes] | None = None
    try:
        _say(f"data dir {data_dir}")
        postgres.start()
        redis.start()
        postgres.create_database(DATABASE)
        applied = asyncio.run(migrate(postgres.url_for(DATABASE)))
        _say(
            f"postgres :{postgres.port} (pid {postgres.pid}), redis :{redis.port}, "
            f"{len(applied)} migration(s) applied"
        )
        for sql_file in args.sql:
            postgres.psql(["-f", str(sql_file.resolve())], database=DATABASE)
            _say(f"EXPERIMENT: applied {sql_file} after the migrations (not production schema)")

        port = free_port(HOST)
        base_url = f"http://{HOST}:{port}"
        api_log = data_dir / "api.log"
        env = _api_env(args, postgres, redis, port, data_dir)
        (data_dir / "metrics").mkdir(exist_ok=True)  # like the chart's emptyDir: it exists
        api_key = _provision_client(env, data_dir, run_id, args.rate_limit, scenario.scopes)
        _say(
            f"client bench-{run_id} ({scenario.scopes}, rate limit {args.rate_limit}) "
            "sends X-API-Key"
        )
        script_args: list[str] = []
        if scenario.prepare is not None:
            prepare = scenario.prepare
            script_args = asyncio.run(
                _with_conn(postgres.url_for(DATABASE), lambda c: prepare(c, f"bench-{run_id}"))
            )
        cmd = [sys.executable, "-m", "riskgate", "api", "--workers", str(args.workers)]
        with api_log.open("ab") as log:
            api = subprocess.Popen(  # noqa: S603
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _wait_ready(base_url, api, api_log)
        _say(
            f"riskgate api --workers {args.workers} on {base_url} (pid {api.pid}, "
            f"log level {args.log_level}, access log -> {api_log})"
        )
        stack = Stack(
            base_url=base_url,
            dsn=postgres.url_for(DATABASE),
            superuser_dsn=postgres.url_for(DATABASE),
            api=api,
            postgres=postgres,
            redis=redis,
            api_log=api_log,
            data_dir=data_dir,
            api_key=api_key,
            script_args=script_args,
        )
        yield stack
    finally:
        # A second Ctrl-C must not interrupt the teardown half-way.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if api is not None:
                _stop_group(api, signal.SIGTERM, timeout=15)
            redis.stop()
            postgres.stop()
            if own_dir and not args.keep_data:
                shutil.rmtree(data_dir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        _say(
            "stack stopped"
            + ("" if own_dir and not args.keep_data else f", data kept in {data_dir}")
        )


async def _with_conn(dsn: str, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await fn(conn)
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------- wrk


def _run_wrk(
    args: argparse.Namespace,
    stack: Stack,
    scenario: Scenario,
    run_id: str,
    duration: str,
    *,
    quiet: bool = False,
    on_start: Callable[[subprocess.Popen[str]], None] | None = None,
) -> dict[str, Any]:
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}",
        f"--timeout={args.timeout}",
        "--latency",
        "-s",
        str(BENCH_DIR / scenario.script),
        stack.base_url,
        "--",
        run_id,
        stack.api_key,
        *stack.script_args,
    ]
    if not quiet:
        shown = cmd[: cmd.index("--")]
        _say(" ".join(shown) + f" -- {run_id} <api key> " + " ".join(stack.script_args))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(  # noqa: S603
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_die_with_parent,
    )
    if on_start is not None:
        on_start(proc)
    try:
        out, _ = proc.communicate()
    except BaseException:
        proc.terminate()
        proc.wait(5)
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    result: dict[str, Any] | None = None
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
        elif not quiet:
            print("    " + line)
    if proc.returncode != 0 or result is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}")
    result["wrk_cpu_s"] = round(wrk_cpu, 2)
    return result


# -------------------------------------------------------------------------------------------- main


def _say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def _verify(
    stack: Stack, scenario: Scenario, run_id: str, result: dict[str, Any]
) -> dict[str, Any]:
    """Every 201 is stored; nothing unsent is stored. Requests cut off by wrk's deadline may
    have been committed without wrk reading the 201, so those are the only allowed surplus."""
    stored = 0
    unanswered = result["sent"] - result["answered"]
    deadline = time.monotonic() + 10
    while True:  # let requests that were in flight at the cut-off finish
        stored = asyncio.run(
            _with_conn(stack.superuser_dsn, lambda c: scenario.count_stored(c, run_id))
        )
        if stored >= result["created"] or time.monotonic() > deadline:
            time.sleep(1.0)
            stored = asyncio.run(
                _with_conn(stack.superuser_dsn, lambda c: scenario.count_stored(c, run_id))
            )
            break
        time.sleep(0.5)
    ok = result["created"] <= stored <= result["created"] + unanswered
    return {
        "stored": stored,
        "unanswered": unanswered,
        "honest": ok,
        "exact": stored == result["created"],
    }


async def _pg_stats(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"
            " AS commits, wal_records, wal_bytes, wal_write, wal_sync FROM pg_stat_wal"
        )
        return {k: int(v) for k, v in dict(row).items()}
    finally:
        await conn.close()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="score")
    p.add_argument("--workers", type=int, default=2, help="riskgate api --workers (default 2)")
    p.add_argument("--connections", "-c", type=int, default=64, help="wrk -c (default 64)")
    p.add_argument("--threads", "-t", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument(
        "--duration", "-d", default="20s", help="wrk -d of the measured run (default 20s)"
    )
    p.add_argument(
        "--warmup", default="5s", help="wrk -d of the warm-up run, 0 to skip (default 5s)"
    )
    p.add_argument("--timeout", default="5s", help="wrk --timeout per request (default 5s)")
    p.add_argument(
        "--pool-max",
        type=int,
        default=None,
        help="RISKGATE_DB_POOL_MAX_SIZE per worker (service default 10)",
    )
    p.add_argument("--pool-min", type=int, default=None, help="RISKGATE_DB_POOL_MIN_SIZE")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="RISKGATE_LOG_LEVEL (default INFO = production: one access line a request)",
    )
    p.add_argument(
        "--rate-limit",
        default="100000000/1s",
        help="the bench client's own rate-limit policy (still checked on every request; "
        "default high enough never to answer 429)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the API (repeatable)",
    )
    p.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="postgres -c setting, e.g. synchronous_commit=off (NOT production defaults)",
    )
    p.add_argument(
        "--sql",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="experiment: SQL file run as superuser after the migrations (repeatable)",
    )
    p.add_argument(
        "--sample-waits",
        action="store_true",
        help="sample pg_stat_activity wait events of the API sessions during the run",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="reuse this directory for PostgreSQL/Redis data (default: a fresh temp dir)",
    )
    p.add_argument("--keep-data", action="store_true", help="do not delete the temp data dir")
    p.add_argument(
        "--keep", action="store_true", help="leave the stack running after the run, until Ctrl-C"
    )
    p.add_argument(
        "--json", type=Path, default=None, help="append the result as one JSON line here"
    )
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = p.parse_args(argv)
    for item in [*args.env, *args.pg_setting]:
        if "=" not in item:
            p.error(f"expected KEY=VALUE, got {item!r}")
    if shutil.which(args.wrk) is None:
        p.error("wrk not found: apt-get install -y wrk")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    # SIGTERM (e.g. from a CI timeout) tears down like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    # Also when started in the background by a non-interactive shell, where SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_id = uuid.uuid4().hex[:12]
    try:
        with running_stack(args, scenario, run_id) as stack:
            if args.warmup not in ("0", "0s", ""):
                _say(f"warm-up {args.warmup}")
                _run_wrk(args, stack, scenario, f"warm{run_id}", args.warmup, quiet=True)
            stack.groups = {
                "postgres": _tree(stack.postgres.pid),
                "redis": _tree(stack.redis.pid),
                "api": _tree(stack.api.pid),
                "bench": [psutil.Process()],  # this script (the wait sampler runs here)
            }
            before = asyncio.run(_pg_stats(stack.superuser_dsn))
            sampler = WaitSampler(stack.superuser_dsn) if args.sample_waits else None
            meter: dict[str, CpuMeter] = {}

            def started(proc: subprocess.Popen[str]) -> None:
                meter["m"] = CpuMeter(stack.groups)
                if sampler is not None:
                    sampler.start()

            result = _run_wrk(args, stack, scenario, run_id, args.duration, on_start=started)
            cpu = meter["m"].stop()
            cpu["wrk"] = round(result.pop("wrk_cpu_s") / cpu["elapsed_s"], 3)
            ours = sum(
                v
                for k, v in cpu.items()
                if k not in ("elapsed_s", "host_busy", "host_iowait", "host_steal")
            )
            # Kernel work not charged to a process (loopback softirq) lands here too, but a large
            # value means something else was running on the machine: the numbers are not clean.
            cpu["other"] = round(cpu["host_busy"] - ours, 3)
            if sampler is not None:
                sampler.stop()
            after = asyncio.run(_pg_stats(stack.superuser_dsn))
            check = _verify(stack, scenario, run_id, result)
            pg = {k: after[k] - before[k] for k in after}
            _report(args, result, check, cpu, pg, sampler)
            if args.json is not None:
                record = {
                    "scenario": scenario.name,
                    "workers": args.workers,
                    "connections": args.connections,
                    "threads": args.threads,
                    "duration": args.duration,
                    "pool_max": args.pool_max,
                    "log_level": args.log_level,
                    "pg_settings": args.pg_setting,
                    "env": args.env,
                    "sql": [str(f) for f in args.sql],
                    **result,
                    **check,
                    "cpu": cpu,
                    "pg": pg,
                    "waits": sampler.report() if sampler else None,
                }
                with args.json.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            if args.keep:
                _say(f"--keep: stack up at {stack.base_url}, database {stack.dsn}; Ctrl-C stops it")
                while stack.api.poll() is None:
                    time.sleep(1)
            failed = not check["honest"] or result["non201"] or result["socket_errors"]
            return 1 if failed else 0
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


def _report(
    args: argparse.Namespace,
    r: dict[str, Any],
    check: dict[str, Any],
    cpu: dict[str, Any],
    pg: dict[str, int],
    sampler: WaitSampler | None,
) -> None:
    changes = [*args.pg_setting, *(f"sql:{f.name}" for f in args.sql), *args.env]
    label = "" if not changes else f"  [NON-DEFAULT: {', '.join(changes)}]"
    print()
    print(
        f"== {args.scenario}: workers={args.workers} connections={args.connections} "
        f"threads={args.threads} pool_max={args.pool_max or 'default(10)'} "
        f"log={args.log_level}{label}"
    )
    print(
        f"   {r['rps']:.0f} req/s   p50 {r['p50_ms']:.1f} ms   p95 {r['p95_ms']:.1f} ms   "
        f"p99 {r['p99_ms']:.1f} ms   errors: non-201 {r['non201']} {r['by_status'] or ''}, "
        f"socket {r['socket_errors']}"
    )
    verdict = "OK" if check["honest"] else "MISMATCH"
    print(
        f"   verify: {r['created']} x 201, {check['stored']} rows stored "
        f"({check['unanswered']} requests cut off by the deadline) -> {verdict}"
    )
    print("   cpu (cores): " + "  ".join(f"{k} {v}" for k, v in cpu.items() if k != "elapsed_s"))
    per = {
        k: v * 1000 / r["rps"]
        for k, v in cpu.items()
        if k in ("api", "postgres", "redis", "wrk") and r["rps"]
    }
    total = sum(per.values())
    print(
        "   cpu per request (ms): "
        + "  ".join(f"{k} {v:.2f}" for k, v in per.items())
        + f"  (sum {total:.2f}: 2 cores allow ~{2000 / max(total, 1e-9):.0f} req/s)"
    )
    if cpu.get("other", 0) > 0.25:
        print(f"   WARNING: {cpu['other']} cores used outside the stack and wrk: noisy machine")
    if pg.get("commits"):
        print(
            f"   postgres: {pg['commits']} commits, {pg['wal_sync']} WAL syncs "
            f"({pg['commits'] / max(pg['wal_sync'], 1):.2f} commits/sync), "
            f"{pg['wal_bytes'] / max(pg['commits'], 1):.0f} WAL bytes/commit"
        )
    if sampler is not None:
        if sampler.error:
            print(f"   wait sampler failed: {sampler.error}")
        else:
            print(f"   api sessions by state (avg of {sampler.samples} samples):")
            for key, avg in sampler.report():
                print(f"      {avg:6.2f}  {key}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Webhook delivery benchmark: outbox rows in, signed deliveries out, on one machine.

    python bench/webhooks.py                          # burst of 20,000, then 500 events/s for 20 s
    python bench/webhooks.py --burst 50000 --rate 1000 --duration 30 --concurrency 256

What it does:

1. starts embedded PostgreSQL and Redis in a temporary directory (fsync on, as shipped), applies
   the migrations, registers a client and one subscription pointing at a receiver on 127.0.0.1
   (an asyncio + httptools HTTP/1.1 server in this process that answers 200 at once),
2. **burst**: writes ``--burst`` outbox rows in one transaction, then starts ``riskgate worker``
   (a subprocess, configured only by ``RISKGATE_*`` variables) and measures deliveries per second
   from the first to the last delivery received, dispatch included,
3. **steady**: with the worker running, writes ``--rate`` outbox rows per second for
   ``--duration`` seconds (a row every few milliseconds, in small transactions), and measures the
   outbox lag of each event: from the row's ``created_at`` (database clock) to the receiver
   getting the signed request (same machine, same clock), p50/p99/max,
4. checks nothing was lost: every row delivered, every delivery ``succeeded`` in the database,
5. prints the figures and the CPU seconds the worker and PostgreSQL used.

The worker's 2xx responses are what "acknowledged" means here; the receiver verifies nothing
(signature checks on the receiving side cost the receiver, not riskgate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from riskgate.auth.signing import generate_private_key_pem
from riskgate.migrate import migrate
from riskgate.webhooks.crypto import KeyRing, generate_key_entry
from riskgate.webhooks.signing import new_secret
from riskgate_dev.embedded import EmbeddedPostgres, EmbeddedRedis, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from webhook_receiver import Received, Receiver

DATABASE = "riskgate"
PAYLOAD = {
    "id": "01a2065b-cc2a-72d5-a4ee-1e7d4c8bdb85",
    "event_id": "bk-1001",
    "source": "flight",
    "score": 38.5,
    "action": "review",
    "score_version": "v0_rules",
    "reasons": [
        {"signal": s, "value": 0.5, "weight": 25.0, "contribution": 12.5}
        for s in ("delay", "weather", "geo", "payment_anomaly")
    ],
    "trace_id": "7ab3" * 8,
    "created_at": "2026-11-23T02:37:37.879276Z",
}


class Clock:
    """Wall-clock receipt time of each webhook-id (first receipt only)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.duplicates = 0

    def __call__(self, request: Received) -> tuple[int, dict[str, str], bytes]:
        msg_id = request.headers.get("webhook-id", "")
        if msg_id in self.first:
            self.duplicates += 1
        else:
            self.first[msg_id] = time.time()
        return 200, {}, b""


async def setup(dsn: str, ring: KeyRing, url: str) -> uuid.UUID:
    """A client and its subscription (to decision.created), written directly."""
    conn = await asyncpg.connect(dsn)
    try:
        client_id, sub_id = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO clients (id, name, secret_hash, scopes) VALUES ($1, 'bench', 'x', '{}')",
            client_id,
        )
        await conn.execute(
            "INSERT INTO webhook_subscriptions (id, owner_client_id, client_ids, url, event_types)"
            " VALUES ($1, $2, ARRAY[$2::uuid], $3, ARRAY['decision.created'])",
            sub_id,
            client_id,
            url,
        )
        sealed = ring.seal(new_secret().encode(), sub_id.bytes)
        await conn.execute(
            "INSERT INTO webhook_secrets (subscription_id, key_id, sealed) VALUES ($1, $2, $3)",
            sub_id,
            sealed.key_id,
            sealed.blob,
        )
        return client_id
    finally:
        await conn.close()


INSERT = (
    "INSERT INTO outbox (event_type, client_id, aggregate_id, payload) "
    "SELECT 'decision.created', $1, gen_random_uuid(), $2::jsonb FROM generate_series(1, $3) "
    "RETURNING id, created_at"
)


async def write_events(conn: asyncpg.Connection, client_id: uuid.UUID, n: int) -> list[Any]:
    return list(await conn.fetch(INSERT, client_id, json.dumps(PAYLOAD), n))


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    profile = env.get("BENCH_PROFILE")
    command = [sys.executable, "-m", "riskgate", "worker"]
    if profile:
        command[1:1] = ["-m", "cProfile", "-o", profile]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)  # noqa: S603


async def wait_delivered(clock: Clock, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while len(clock.first) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(clock.first)} of {count} deliveries in {within}s")
        await asyncio.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def burst(
    dsn: str,
    client_id: uuid.UUID,
    clock: Clock,
    env: dict[str, str],
    args: argparse.Namespace,
    log: Path,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        await write_events(conn, client_id, args.burst)
    finally:
        await conn.close()
    worker = start_worker(env, log)
    await wait_delivered(clock, args.burst, within=600)
    times = sorted(clock.first.values())
    elapsed = times[-1] - times[0]
    return worker, {
        "events": args.burst,
        "seconds": round(elapsed, 2),
        "deliveries_per_second": round(args.burst / elapsed, 1),
    }


async def steady(
    dsn: str, client_id: uuid.UUID, clock: Clock, args: argparse.Namespace
) -> dict[str, Any]:
    before = len(clock.first)
    conn = await asyncpg.connect(dsn)
    created: list[tuple[float, int]] = []  # (created_at epoch, outbox id)
    tick = 0.01
    per_tick = args.rate * tick
    owed = 0.0
    started = next_tick = time.monotonic()
    try:
        while time.monotonic() - started < args.duration:
            owed += per_tick
            n = int(owed)
            owed -= n
            if n:
                rows = await write_events(conn, client_id, n)
                created += [(r["created_at"].timestamp(), r["id"]) for r in rows]
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        await conn.close()
    sent_seconds = time.monotonic() - started
    await wait_delivered(clock, before + len(created), within=120)
    # Receipts in arrival order pair with ids in outbox order closely enough for percentiles;
    # exact pairing: map webhook-id -> delivery -> outbox row, from the database.
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT d.id, o.created_at FROM webhook_deliveries d"
            " JOIN outbox o ON o.id = d.outbox_id WHERE o.id = ANY($1::bigint[])",
            [i for _, i in created],
        )
    finally:
        await conn.close()
    lags = [clock.first[f"msg_{r['id'].hex}"] - r["created_at"].timestamp() for r in rows]
    return {
        "events": len(created),
        "events_per_second": round(len(created) / sent_seconds, 1),
        "lag_p50_ms": round(statistics.median(lags) * 1000, 1),
        "lag_p99_ms": round(pct(lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1),
    }


async def verify(dsn: str, expected: int) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) AS undispatched,"
            " (SELECT count(*) FROM webhook_deliveries) AS deliveries,"
            " (SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded') AS succeeded,"
            " (SELECT count(*) FROM webhook_attempts) AS attempts"
        )
    finally:
        await conn.close()
    assert row is not None
    result = dict(row)
    complete = result["deliveries"] == result["succeeded"] == expected
    if not complete or result["undispatched"]:
        raise SystemExit(f"lost or unfinished deliveries: {result}, expected {expected}")
    return result


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="riskgate-bench-webhooks-"))
    key_file = root / "jwt.pem"
    key_file.write_bytes(generate_private_key_pem())
    entry = generate_key_entry("bench")
    ring = KeyRing.parse(entry)
    clock = Clock()
    receiver = await Receiver(clock).start()
    with EmbeddedPostgres(root / "pg") as postgres, EmbeddedRedis(root / "redis") as redis:
        postgres.create_database(DATABASE)
        dsn = postgres.url_for(DATABASE)
        await migrate(dsn)
        client_id = await setup(dsn, ring, receiver.url)
        env = {
            **os.environ,
            "RISKGATE_DATABASE_URL": dsn,
            "RISKGATE_REDIS_URL": redis.url,
            "RISKGATE_JWT_SIGNING_KEY_FILE": str(key_file),
            "RISKGATE_WEBHOOK_ENCRYPTION_KEYS": entry,
            "RISKGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "RISKGATE_WORKER_PORT": str(free_port()),
            "RISKGATE_WORKER_CONCURRENCY": str(args.concurrency),
            "RISKGATE_LOG_LEVEL": "WARNING",
            **dict(kv.split("=", 1) for kv in args.env),
            **({"BENCH_PROFILE": args.profile} if args.profile else {}),
        }
        log = root / "worker.log"
        print(f"burst: {args.burst} events, worker concurrency {args.concurrency} ...", flush=True)
        worker, burst_result = await burst(dsn, client_id, clock, env, args, log)
        worker_proc = psutil.Process(worker.pid)
        cpu_before = cpu(worker_proc)
        print(f"  {burst_result}", flush=True)
        print(f"steady: {args.rate} events/s for {args.duration} s ...", flush=True)
        steady_result = await steady(dsn, client_id, clock, args)
        steady_cpu = cpu(worker_proc) - cpu_before
        print(f"  {steady_result}", flush=True)
        total = args.burst + steady_result["events"]
        checked = await verify(dsn, total)
        print(f"  verified: {checked}, duplicates seen by the receiver: {clock.duplicates}")
        print(
            f"  worker CPU during steady: {steady_cpu:.1f} s "
            f"({steady_cpu / args.duration:.0%} of one core)"
        )
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    await receiver.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--burst", type=int, default=20000, help="outbox rows in the burst")
    p.add_argument("--rate", type=float, default=500.0, help="events/s in the steady phase")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of the steady phase")
    p.add_argument("--concurrency", type=int, default=128, help="RISKGATE_WORKER_CONCURRENCY")
    p.add_argument("--profile", default="", help="write a cProfile of the worker to this file")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra RISKGATE_* settings for the worker",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main(parse_args()))
    except ImportError:
        asyncio.run(main(parse_args()))

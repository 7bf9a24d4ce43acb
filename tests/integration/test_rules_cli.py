"""``riskgate rules list|create|activate|retire`` as real processes, on a database of their own
(activating a version changes every decision, so the shared test database stays on v0_rules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest

from conftest import (
    connect_as_app,
    fresh_database,
    new_event_id,
    new_key,
    running_app,
    settings_with,
)
from riskgate.settings import Settings

HEAVY_GEO = "delay=10,weather=10,geo=60,payment_anomaly=20"
SIGNALS = {"delay": 0.7, "weather": 0.5, "geo": 0.2, "payment_anomaly": 0}


@pytest.fixture
async def rules_db(postgres_admin_url: str) -> str:
    return await fresh_database(postgres_admin_url, f"riskgate_rules_{uuid.uuid4().hex[:8]}")


def riskgate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "riskgate", *args],
        env={**env, "RISKGATE_DATABASE_URL": url, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def statuses(url: str) -> dict[str, str]:
    listed = riskgate(url, "rules", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {rule["version"]: rule["status"] for rule in json.loads(listed.stdout)}


async def rule_audit(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    conn = await connect_as_app(url)
    try:
        rows = await conn.fetch(
            "SELECT action, entity_id, details FROM audit_log "
            "WHERE entity_type = 'rule_version' ORDER BY id"
        )
    finally:
        await conn.close()
    return [(r["action"], r["entity_id"], json.loads(r["details"])) for r in rows]


@pytest.mark.parametrize(
    ("weights", "review", "hold", "message"),
    [
        ("delay=10,weather=10,geo=60", "20", "40", "weights must name exactly"),
        ("delay=50,weather=10,geo=60,payment_anomaly=20", "20", "40", "sum to at most 100"),
        ("delay=-10,weather=10,geo=60,payment_anomaly=20", "20", "40", "non-negative"),
        ("delay=ten,weather=10,geo=60,payment_anomaly=20", "20", "40", "not a number"),
        (HEAVY_GEO, "50", "40", "must not exceed the hold threshold"),
        (HEAVY_GEO, "20", "100.5", "hold threshold must be in [0, 100]"),
        (HEAVY_GEO, "20.25", "40", "at most one decimal"),
    ],
)
async def test_create_refuses_a_rule_the_scoring_cannot_run_and_stores_nothing(
    rules_db: str, weights: str, review: str, hold: str, message: str
) -> None:
    created = riskgate(
        rules_db, "rules", "create", "v1_bad", "--weights", weights,
        "--review-threshold", review, "--hold-threshold", hold,
    )  # fmt: skip
    assert created.returncode == 2
    assert message in created.stderr
    assert statuses(rules_db) == {"v0_rules": "active"}
    assert await rule_audit(rules_db) == []


async def test_a_version_goes_shadow_active_retired_audited_and_scores_live(
    rules_db: str, settings: Settings
) -> None:
    create = ["rules", "create", "v1_heavy_geo", "--weights", HEAVY_GEO]
    thresholds = ["--review-threshold", "20", "--hold-threshold", "40"]
    assert riskgate(rules_db, *create, *thresholds).returncode == 0
    again = riskgate(rules_db, *create, *thresholds)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: rule version v1_heavy_geo exists"
    assert statuses(rules_db) == {"v0_rules": "active", "v1_heavy_geo": "shadow"}

    live = settings_with(settings, database_url=rules_db, rules_refresh_seconds=0.001)
    async with running_app(live) as app:
        before = await app.client.post(
            "/v1/score", json={"event_id": new_event_id(), "source": "flight", "signals": SIGNALS},
            headers={"Idempotency-Key": new_key()},
        )  # fmt: skip
        assert before.json()["score_version"] == "v0_rules"

        activated = riskgate(rules_db, "rules", "activate", "v1_heavy_geo")
        assert activated.stdout.strip() == "v1_heavy_geo active, v0_rules retired"
        after = await app.client.post(
            "/v1/score", json={"event_id": new_event_id(), "source": "flight", "signals": SIGNALS},
            headers={"Idempotency-Key": new_key()},
        )  # fmt: skip
    # 10*0.7 + 10*0.5 + 60*0.2 = 24.0: review under v1's thresholds (20 / 40)
    assert (after.json()["score_version"], after.json()["score"]) == ("v1_heavy_geo", 24.0)
    assert after.json()["action"] == "review"

    refused = riskgate(rules_db, "rules", "retire", "v1_heavy_geo")
    assert refused.returncode == 2
    assert "is the active version" in refused.stderr
    assert riskgate(rules_db, "rules", "activate", "v0_rules").returncode == 0
    assert riskgate(rules_db, "rules", "retire", "v0_rules").returncode == 2
    assert statuses(rules_db) == {"v0_rules": "active", "v1_heavy_geo": "retired"}
    assert [(action, version) for action, version, _ in await rule_audit(rules_db)] == [
        ("rule_version.created", "v1_heavy_geo"),
        ("rule_version.retired", "v0_rules"),
        ("rule_version.activated", "v1_heavy_geo"),
        ("rule_version.retired", "v1_heavy_geo"),
        ("rule_version.activated", "v0_rules"),
    ]


async def test_the_app_login_may_change_a_status_but_never_a_stored_rule(rules_db: str) -> None:
    conn = await connect_as_app(rules_db)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE rule_versions SET hold_threshold = 99 WHERE true")
    finally:
        await conn.close()


def test_unknown_versions_are_named(rules_db: str) -> None:
    for verb in ("activate", "retire"):
        run = riskgate(rules_db, "rules", verb, "v9_missing")
        assert (run.returncode, run.stderr.strip()) == (2, "error: no rule version v9_missing")

"""Real PostgreSQL and Redis for scripts/image-test, from the host's dev extra.

Starts both under DATA_DIR, creates the riskgate database with an owner (the superuser) and a
least-privilege login that is only a member of riskgate_app, writes their URLs as shell
assignments to DATA_DIR/servers.env, then serves until SIGTERM and stops both.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from riskgate_dev.embedded import EmbeddedPostgres, EmbeddedRedis

APP_LOGIN = "riskgate_login"
ROLES_SQL = """
DO $$ BEGIN CREATE ROLE riskgate_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE ROLE riskgate_login LOGIN IN ROLE riskgate_app;
"""


def main(data_dir: Path) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with (
        EmbeddedPostgres(data_dir / "postgres", fsync="off") as postgres,
        EmbeddedRedis(data_dir / "redis") as redis,
    ):
        postgres.create_database("riskgate")
        postgres.psql(["-f", "-"], input_text=ROLES_SQL)
        owner = postgres.url_for("riskgate")
        app = owner.replace("postgresql://postgres@", f"postgresql://{APP_LOGIN}@", 1)
        ready = data_dir / "servers.env"
        ready.with_suffix(".tmp").write_text(
            f"OWNER_URL='{owner}'\nAPP_URL='{app}'\nREDIS_URL='{redis.url}'\n"
        )
        ready.with_suffix(".tmp").rename(ready)  # appears whole, so the script never reads half
        stop.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Real PostgreSQL and Redis for scripts/image-test, from the host's dev extra.

Starts both under DATA_DIR, sets the riskgate database up with the roles of the README's
"Database roles" (the same code as `riskgate dev` and the test fixtures), writes the owner's and
the app login's URLs as shell assignments to DATA_DIR/servers.env, then serves until SIGTERM
and stops both.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from pathlib import Path

from riskgate_dev.embedded import EmbeddedPostgres, EmbeddedRedis
from riskgate_dev.roles import provision_database


def main(data_dir: Path) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with (
        EmbeddedPostgres(data_dir / "postgres", fsync="off") as postgres,
        EmbeddedRedis(data_dir / "redis") as redis,
    ):
        logins = asyncio.run(provision_database(postgres.url, "riskgate"))
        ready = data_dir / "servers.env"
        ready.with_suffix(".tmp").write_text(
            f"OWNER_URL='{logins.owner_url}'\nAPP_URL='{logins.app_url}'\nREDIS_URL='{redis.url}'\n"
        )
        ready.with_suffix(".tmp").rename(ready)  # appears whole, so the script never reads half
        stop.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

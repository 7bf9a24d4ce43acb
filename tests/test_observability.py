"""The observability middleware, metrics, JSON logs and trace context, on a tiny Litestar app."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from riskgate.observability import (
    ObservabilityMiddleware,
    configure_logging,
    current_request_id,
    current_trace_context,
    format_traceparent,
    log_unhandled_exception,
    render_metrics,
)
from riskgate.observability.logs import JsonFormatter
from riskgate.observability.metrics import HTTP_DURATION_BUCKETS, LATENCY_SLO_SECONDS
from riskgate.observability.tracing import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    exporter_configured,
    parse_traceparent,
)

SERVICE_DIR = Path(__file__).resolve().parents[1] / "service"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
HEX32 = re.compile(r"[0-9a-f]{32}")
ITEM_ROUTE = "/v1/items/{id}"  # Litestar's template drops the converter: "{id:int}" -> "{id}"


# --- the app under test ------------------------------------------------------------------------


@get("/v1/items/{id:int}")
async def get_item(id: FromPath[int]) -> dict[str, int]:
    return {"id": id}


@get("/v1/boom")
async def boom() -> None:
    raise RuntimeError("kaput")


@get("/v1/context")
async def context() -> dict[str, Any]:
    logging.getLogger("riskgate.test").info(
        "inside", extra={"item_count": 3, "not_json": object(), "msg_id": "m-1"}
    )
    trace_id, span_id = current_trace_context()
    return {
        "request_id": current_request_id(),
        "trace_id": trace_id,
        "span_id": span_id,
        "traceparent": format_traceparent(),
    }


@get("/metrics")
async def metrics_endpoint() -> Response[bytes]:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


def make_litestar() -> Litestar:
    return Litestar(
        [get_item, boom, context, metrics_endpoint],
        logging_config=None,
        after_exception=[log_unhandled_exception],
    )


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Logging configured as in production, into a buffer; the previous setup restored after."""
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")
    saved_loggers = {
        name: (lg.handlers[:], lg.propagate, lg.level)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    saved_root = (root.handlers[:], root.level)
    saved_flags = (logging.logThreads, logging.logMultiprocessing)
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        logging.logThreads, logging.logMultiprocessing = saved_flags
        for name, (handlers, propagate, level) in saved_loggers.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.propagate = propagate
            lg.setLevel(level)


@pytest.fixture
def client(log_output: io.StringIO) -> Iterator[TestClient[Any]]:
    with TestClient(app=ObservabilityMiddleware(make_litestar())) as test_client:
        yield test_client


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in log_lines(buffer) if line["logger"] == "riskgate.access"]


def requests_total(route: str, status: int, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("riskgate_http_requests_total", labels) or 0.0


def duration_count(route: str, method: str = "GET") -> float:
    labels = {"method": method, "route": route}
    return REGISTRY.get_sample_value("riskgate_http_request_duration_seconds_count", labels) or 0.0


def http_route_labels() -> set[str]:
    return {
        sample.labels["route"]
        for family in REGISTRY.collect()
        if family.name.startswith("riskgate_http_")
        for sample in family.samples
        if "route" in sample.labels
    }


# --- route labels --------------------------------------------------------------------------------


def test_litestar_writes_the_template_into_the_scope_it_was_given() -> None:
    """The middleware relies on this: if a Litestar upgrade copies the scope, this test fails."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/items/42",
        "raw_path": b"/v1/items/42",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(make_litestar()(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 200
    assert scope["path_template"] == ITEM_ROUTE


def test_route_label_is_the_template_never_the_raw_path(client: TestClient[Any]) -> None:
    before = requests_total(ITEM_ROUTE, 200), duration_count(ITEM_ROUTE)
    for item_id in (42, 43):
        assert client.get(f"/v1/items/{item_id}").status_code == 200
    assert requests_total(ITEM_ROUTE, 200) - before[0] == 2
    assert duration_count(ITEM_ROUTE) - before[1] == 2
    routes = http_route_labels()
    assert ITEM_ROUTE in routes
    assert not any(route.startswith("/v1/items/4") for route in routes)


def test_unknown_routes_and_wrong_methods_are_unmatched(client: TestClient[Any]) -> None:
    before_404 = requests_total("unmatched", 404)
    before_405 = requests_total("unmatched", 405, method="POST")
    assert client.get("/no/such/path/123").status_code == 404
    assert client.post("/v1/items/1").status_code == 405
    assert requests_total("unmatched", 404) - before_404 == 1
    assert requests_total("unmatched", 405, method="POST") - before_405 == 1
    assert not any(route.startswith("/no/such") for route in http_route_labels())


def test_arbitrary_methods_are_not_label_values(client: TestClient[Any]) -> None:
    before = requests_total("unmatched", 405, method="OTHER")
    assert client.request("FROBNICATE", "/v1/items/1").status_code == 405
    assert requests_total("unmatched", 405, method="OTHER") - before == 1


def test_duration_histogram_has_the_slo_bucket(client: TestClient[Any]) -> None:
    assert LATENCY_SLO_SECONDS == 0.45
    assert HTTP_DURATION_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.45, 0.5, 1, 2.5, 5, 10)
    client.get("/v1/items/1")
    labels = {"method": "GET", "route": ITEM_ROUTE, "le": "0.45"}
    assert REGISTRY.get_sample_value("riskgate_http_request_duration_seconds_bucket", labels)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'le="0.45"' in response.text
    assert "riskgate_idempotency_requests_total" in response.text
    assert "riskgate_redis_unavailable_total" in response.text


# --- errors --------------------------------------------------------------------------------------


def test_handler_exception_is_a_500_of_its_route_and_logged(
    client: TestClient[Any], log_output: io.StringIO
) -> None:
    before = requests_total("/v1/boom", 500)
    response = client.get("/v1/boom")
    assert response.status_code == 500
    assert requests_total("/v1/boom", 500) - before == 1
    errors = [line for line in log_lines(log_output) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert "RuntimeError: kaput" in errors[0]["exception"]
    assert errors[0]["request_id"] == response.headers["x-request-id"]
    assert errors[0]["route"] == "/v1/boom"
    assert access_lines(log_output)[-1]["status"] == 500


def test_http_errors_below_500_are_not_logged_as_errors(
    client: TestClient[Any], log_output: io.StringIO
) -> None:
    client.get("/nope")
    assert not [line for line in log_lines(log_output) if line["level"] == "ERROR"]


class DomainConflict(Exception):
    status = 409


@pytest.mark.parametrize(
    ("exc", "logged"),
    [(RuntimeError("x"), True), (DomainConflict("taken"), False), (NotFoundException(), False)],
)
def test_exception_hook_logs_only_server_errors(
    log_output: io.StringIO, exc: Exception, logged: bool
) -> None:
    scope: Any = {"type": "http", "method": "GET", "path": "/x", "path_template": "/x"}
    asyncio.run(log_unhandled_exception(exc, scope))
    assert [line["level"] for line in log_lines(log_output)] == (["ERROR"] if logged else [])


@pytest.mark.parametrize("start_response_first", [False, True])
def test_exception_escaping_the_app_is_recorded_logged_and_reraised(
    log_output: io.StringIO, start_response_first: bool
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        if start_response_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ValueError("escaped")

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/raw", "headers": [], "query_string": b""}
    before = requests_total("unmatched", 500)
    with pytest.raises(ValueError, match="escaped"):
        asyncio.run(ObservabilityMiddleware(broken)(scope, receive, send))  # type: ignore[arg-type]
    assert requests_total("unmatched", 500) - before == 1
    lines = log_lines(log_output)
    assert [line["level"] for line in lines] == ["ERROR", "INFO"]
    assert "ValueError: escaped" in lines[0]["exception"]
    assert lines[1]["status"] == 500
    if start_response_first:  # the ids were still added to the response that did start
        assert (b"x-request-id", lines[1]["request_id"].encode()) in sent[0]["headers"]


def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def noop(*_: Any) -> Any:
        return None

    asyncio.run(ObservabilityMiddleware(inner)({"type": "lifespan"}, noop, noop))  # type: ignore[arg-type]
    assert seen == ["lifespan"]


# --- request ids and trace ids -------------------------------------------------------------------


def test_valid_request_id_is_echoed(client: TestClient[Any]) -> None:
    incoming = "Req-1.2_3" + "x" * 119
    assert len(incoming) == 128
    response = client.get("/v1/items/1", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize(
    "incoming", [None, b"", b"has space", b"semi;colon", "caf\u00e9".encode(), b"x" * 129]
)
def test_missing_or_invalid_request_id_is_replaced_by_a_uuid4(
    client: TestClient[Any], incoming: bytes | None
) -> None:
    headers = {} if incoming is None else {b"x-request-id": incoming}
    request_id = client.get("/v1/items/1", headers=headers).headers["x-request-id"]
    assert HEX32.fullmatch(request_id)
    assert uuid.UUID(hex=request_id).version == 4


def test_incoming_traceparent_sets_the_trace_id(client: TestClient[Any]) -> None:
    response = client.get("/v1/context", headers={"traceparent": TRACEPARENT})
    assert response.headers["x-trace-id"] == TRACE_ID
    assert "traceparent" not in response.headers
    body = response.json()
    assert body["trace_id"] == TRACE_ID
    assert body["span_id"] not in (PARENT_SPAN_ID, INVALID_SPAN_ID)  # our own span
    assert body["traceparent"] == f"00-{TRACE_ID}-{body['span_id']}-01"
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "traceparent",
    [
        None,
        "garbage",
        f"00-{'0' * 32}-{PARENT_SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{PARENT_SPAN_ID}-01",  # forbidden version
        f"00-{TRACE_ID.upper()}-{PARENT_SPAN_ID}-01",  # upper case is invalid
        f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01-extra",  # version 00 has exactly four fields
    ],
)
def test_without_a_valid_traceparent_a_new_trace_id_is_drawn(
    client: TestClient[Any], traceparent: str | None
) -> None:
    headers = {} if traceparent is None else {"traceparent": traceparent}
    first = client.get("/v1/context", headers=headers)
    second = client.get("/v1/context", headers=headers)
    trace_ids = {first.headers["x-trace-id"], second.headers["x-trace-id"]}
    assert len(trace_ids) == 2  # fresh per request
    assert all(HEX32.fullmatch(t) and t not in (TRACE_ID, INVALID_TRACE_ID) for t in trace_ids)
    assert first.json()["traceparent"].endswith("-00")  # nothing was sampled


def test_parse_traceparent_accepts_future_versions() -> None:
    future = f"01-{TRACE_ID}-{PARENT_SPAN_ID}-03-more".encode()
    assert parse_traceparent(future) == (TRACE_ID, PARENT_SPAN_ID, "01")
    assert parse_traceparent(TRACEPARENT.encode()) == (TRACE_ID, PARENT_SPAN_ID, "01")


def test_outside_a_request_there_is_no_trace_context() -> None:
    assert current_trace_context() == (INVALID_TRACE_ID, INVALID_SPAN_ID)
    assert format_traceparent() == ""
    assert current_request_id() is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_exporter_is_configured_by_the_standard_variables(
    environ: dict[str, str], expected: bool
) -> None:
    assert exporter_configured(environ) is expected


# --- logs ----------------------------------------------------------------------------------------


def test_access_line_is_one_json_object_without_query_string(
    client: TestClient[Any], log_output: io.StringIO
) -> None:
    response = client.get(
        "/v1/items/7?token=s3cr3t&email=a@b.c", headers={"traceparent": TRACEPARENT}
    )
    raw = log_output.getvalue()
    assert "s3cr3t" not in raw
    assert "token" not in raw
    assert "a@b.c" not in raw
    (line,) = access_lines(log_output)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert line["level"] == "INFO"
    assert line["msg"] == "GET /v1/items/7 200"
    assert line["method"] == "GET"
    assert line["route"] == ITEM_ROUTE
    assert line["path"] == "/v1/items/7"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["trace_id"] == TRACE_ID == response.headers["x-trace-id"]
    assert HEX32.fullmatch(line["trace_id"])


def test_log_lines_inside_a_request_carry_the_context_and_the_extras(
    client: TestClient[Any], log_output: io.StringIO
) -> None:
    response = client.get("/v1/context")
    body = response.json()
    (line,) = [line for line in log_lines(log_output) if line["logger"] == "riskgate.test"]
    assert line["msg"] == "inside"
    assert line["request_id"] == body["request_id"] == response.headers["x-request-id"]
    assert line["trace_id"] == body["trace_id"] == response.headers["x-trace-id"]
    assert line["span_id"] == body["span_id"]
    assert line["item_count"] == 3
    assert line["msg_id"] == "m-1"
    assert "not_json" not in line  # not JSON-serialisable: dropped


def test_exceptions_are_rendered_as_a_string_field(log_output: io.StringIO) -> None:
    logger = logging.getLogger("riskgate.test")
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("failed %s", "here", extra={"attempt": 2})
    (line,) = log_lines(log_output)
    assert line["level"] == "ERROR"
    assert line["msg"] == "failed here"
    assert line["attempt"] == 2
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in line["exception"]
    assert "request_id" not in line  # outside a request
    assert "trace_id" not in line


def test_extras_cannot_overwrite_the_core_fields() -> None:
    record = logging.LogRecord("riskgate.x", logging.WARNING, __file__, 1, "real", None, None)
    record.ts = "fake"
    record.level = "fake"
    record.logger = "fake"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "real"
    assert line["level"] == "WARNING"
    assert line["logger"] == "riskgate.x"
    assert line["ts"] != "fake"


def test_uvicorn_loggers_share_the_json_handler(log_output: io.StringIO) -> None:
    for name in ("uvicorn", "uvicorn.error"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate
    access = logging.getLogger("uvicorn.access")
    # No handler and no propagation: uvicorn then skips formatting its access lines entirely.
    # (pytest attaches its own capture handlers to non-propagating loggers; ignore those.)
    assert not access.propagate
    assert all(type(h).__module__.startswith("_pytest") for h in access.handlers)
    logging.getLogger("uvicorn.error").info(
        "Started server process", extra={"color_message": "\x1b[36mStarted\x1b[0m"}
    )
    access.info("should not appear")
    (line,) = log_lines(log_output)
    assert line["logger"] == "uvicorn.error"
    assert line["msg"] == "Started server process"
    assert "color_message" not in line


# --- multi-process metrics and active tracing (in fresh interpreters) ----------------------------


def run_python(code: str, env: dict[str, str]) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(SERVICE_DIR), **env}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_render_metrics_aggregates_worker_processes(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = """
        from riskgate.observability.metrics import observe_http_request, record_idempotency
        observe_http_request("GET", "/v1/items/{id}", 200, 0.3)
        record_idempotency("replayed")
    """
    for _ in range(2):  # two "workers", each a process of its own
        run_python(worker, env)
    scrape = """
        import os
        from riskgate.observability.metrics import render_metrics
        body, content_type = render_metrics()
        print(content_type)
        print(body.decode())
    """
    content_type, _, body = run_python(scrape, env).partition("\n")
    assert content_type.startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    item = (("method", "GET"), ("route", "/v1/items/{id}"))
    assert samples["riskgate_http_requests_total", (*item, ("status", "200"))] == 2
    bucket = "riskgate_http_request_duration_seconds_bucket"
    assert samples[bucket, (("le", "0.45"), *item)] == 2
    assert samples[bucket, (("le", "0.25"), *item)] == 0
    assert samples["riskgate_idempotency_requests_total", (("outcome", "replayed"),)] == 2
    assert 'riskgate_build_info{version="' in body
    assert any(path.name.startswith("counter_") for path in tmp_path.iterdir())


ACTIVE_TRACING = """
    import json
    from litestar import Litestar, get
    from litestar.params import FromPath
    from litestar.testing import TestClient
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from riskgate.observability import ObservabilityMiddleware, configure_tracing
    from riskgate.observability import current_trace_context, format_traceparent
    from riskgate.observability.tracing import tracing_active

    exporter = InMemorySpanExporter()
    configure_tracing("riskgate-test", span_processor=SimpleSpanProcessor(exporter))
    configure_tracing("again")  # idempotent
    out = {"active": tracing_active()}
    if not out["active"]:
        print(json.dumps(out))
        raise SystemExit

    @get("/v1/items/{id:int}")
    async def item(id: FromPath[int]) -> dict[str, str]:
        return {"trace": current_trace_context()[0], "traceparent": format_traceparent()}

    with TestClient(ObservabilityMiddleware(Litestar([item], logging_config=None))) as client:
        first = client.get("/v1/items/5", headers={"traceparent": "TRACEPARENT"})
        second = client.get("/missing")
    spans = exporter.get_finished_spans()
    provider = trace.get_tracer_provider()
    out.update(
        header=first.headers["x-trace-id"],
        body=first.json(),
        second_header=second.headers["x-trace-id"],
        names=[s.name for s in spans],
        kinds=[s.kind.name for s in spans],
        trace_ids=[format(s.context.trace_id, "032x") for s in spans],
        span_ids=[format(s.context.span_id, "016x") for s in spans],
        parents=[format(s.parent.span_id, "016x") if s.parent else None for s in spans],
        attributes=[dict(s.attributes) for s in spans],
        errors=[s.status.status_code.name for s in spans],
        service=provider.resource.attributes["service.name"],
        instrumented=[
            AsyncPGInstrumentor().is_instrumented_by_opentelemetry,
            RedisInstrumentor().is_instrumented_by_opentelemetry,
        ],
    )
    print(json.dumps(out))
""".replace("TRACEPARENT", TRACEPARENT)


def test_active_tracing_creates_server_spans_parented_on_traceparent() -> None:
    out = json.loads(run_python(ACTIVE_TRACING, {"OTEL_SDK_DISABLED": "false"}))
    assert out["active"]
    assert out["names"] == [f"GET {ITEM_ROUTE}", "GET"]
    assert out["kinds"] == ["SERVER", "SERVER"]
    assert out["service"] == "riskgate-test"
    assert out["instrumented"] == [True, True]
    assert out["trace_ids"][0] == TRACE_ID == out["header"] == out["body"]["trace"]
    assert out["parents"][0] == PARENT_SPAN_ID
    assert out["body"]["traceparent"] == f"00-{TRACE_ID}-{out['span_ids'][0]}-01"
    assert out["attributes"][0] == {
        "http.request.method": "GET",
        "http.route": ITEM_ROUTE,
        "http.response.status_code": 200,
    }
    assert out["parents"][1] is None  # no traceparent: a new trace
    assert out["trace_ids"][1] == out["second_header"] != TRACE_ID
    assert out["attributes"][1]["http.response.status_code"] == 404
    assert "http.route" not in out["attributes"][1]
    assert out["errors"] == ["UNSET", "UNSET"]


def test_sdk_disabled_means_no_tracing_even_with_an_exporter() -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    assert json.loads(run_python(ACTIVE_TRACING, env)) == {"active": False}

"""Trace context for every request, with or without an OpenTelemetry exporter.

Every request has a trace id (responses carry it as ``X-Trace-Id`` and inside error problems and
decisions), so there are two modes:

* **active**: :func:`configure_tracing` found an OTLP exporter configured by the standard
  ``OTEL_*`` variables (or was given a span processor). An SDK ``TracerProvider`` is installed, the
  middleware starts a real SERVER span per request (parented on the incoming ``traceparent`` via
  the global propagator), asyncpg and redis calls get child spans.
* **passive** (the default; also with ``OTEL_SDK_DISABLED=true``): nothing is recorded, but the
  middleware still keeps W3C trace context: it reuses the trace id of a valid incoming
  ``traceparent`` or draws a random one, draws a span id, and keeps both in a context variable. No
  SDK is installed in this mode: spans that nobody exports would cost ~25 us a request for nothing.
  Only the W3C ``traceparent`` header is read here (``tracestate``, baggage and ``OTEL_PROPAGATORS``
  matter in active mode only).

:func:`current_trace_context` and :func:`format_traceparent` work the same in both modes.
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

__all__ = [
    "INVALID_SPAN_ID",
    "INVALID_TRACE_ID",
    "configure_tracing",
    "current_trace_context",
    "format_traceparent",
    "parse_traceparent",
    "tracing_active",
]

INVALID_TRACE_ID: Final = "0" * 32
INVALID_SPAN_ID: Final = "0" * 16

# (trace_id hex32, span_id hex16, trace flags hex2) of the current request.
_trace_ids_var: ContextVar[tuple[str, str, str] | None] = ContextVar(
    "riskgate_trace_ids", default=None
)

_lock = threading.Lock()
_configured = False
_tracer: trace.Tracer | None = None


# -------------------------------------------------------------------------------------------------
# Setup
# -------------------------------------------------------------------------------------------------


def _env_true(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def exporter_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when the standard variables ask for an OTLP trace exporter."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def configure_tracing(service_name: str, *, span_processor: SpanProcessor | None = None) -> None:
    """Install the OpenTelemetry SDK if an exporter is configured; safe to call more than once.

    ``OTEL_SDK_DISABLED=true`` wins over everything. ``OTEL_SERVICE_NAME``, when set, overrides
    ``service_name``. The OTLP exporter speaks HTTP/protobuf and reads its own
    ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout). ``span_processor`` adds a
    processor of the caller's (e.g. an in-memory exporter in tests) and turns tracing on by itself.
    """
    global _configured, _tracer
    with _lock:
        if _configured:
            return
        _configured = True
        if _env_true(os.environ, "OTEL_SDK_DISABLED"):
            return
        use_otlp = exporter_configured()
        if not use_otlp and span_processor is None:
            return

        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider

        name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        if use_otlp:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if span_processor is not None:
            provider.add_span_processor(span_processor)
        trace.set_tracer_provider(provider)
        _instrument_libraries(provider)
        _tracer = provider.get_tracer("riskgate")


def _instrument_libraries(provider: trace.TracerProvider) -> None:
    # Neither instrumentation records values: asyncpg's capture_parameters stays False, redis
    # reports commands as "SET ? ?".
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    for instrumentor in (asyncpg_instrumentor, RedisInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def tracing_active() -> bool:
    """True when requests get real, recorded OpenTelemetry spans."""
    return _tracer is not None


# -------------------------------------------------------------------------------------------------
# Reading the current context
# -------------------------------------------------------------------------------------------------


def current_trace_context() -> tuple[str, str]:
    """``(trace_id, span_id)`` in lower-case hex (32 and 16 digits) of the current span.

    Outside any request or span it returns :data:`INVALID_TRACE_ID`, :data:`INVALID_SPAN_ID`.
    """
    if _tracer is not None:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            return format_trace_id(span_context.trace_id), format_span_id(span_context.span_id)
    ids = _trace_ids_var.get()
    if ids is None:
        return INVALID_TRACE_ID, INVALID_SPAN_ID
    return ids[0], ids[1]


def format_traceparent() -> str:
    """The W3C ``traceparent`` of the current span, or ``""`` outside any request or span."""
    if _tracer is not None:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            return (
                f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
                f"-{int(span_context.trace_flags) & 0xFF:02x}"
            )
    ids = _trace_ids_var.get()
    if ids is None:
        return ""
    return f"00-{ids[0]}-{ids[1]}-{ids[2]}"


# -------------------------------------------------------------------------------------------------
# Per-request entry points (used by riskgate.observability.middleware)
# -------------------------------------------------------------------------------------------------

_TRACEPARENT_RE: Final = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\r\n]*)?"
)
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16


def parse_traceparent(value: bytes) -> tuple[str, str, str] | None:
    """``(trace_id, parent_span_id, flags)`` of a valid W3C traceparent header value, else None."""
    match = _TRACEPARENT_RE.fullmatch(value.strip(b" \t"))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id.decode(), span_id.decode(), "01" if int(flags, 16) & 1 else "00"


def random_id(bits: int) -> int:
    """A random non-zero id of ``bits`` bits (not cryptographic: ids are not secrets)."""
    # random's global generator is reseeded in forked children, like the SDK's RandomIdGenerator.
    value = random.getrandbits(bits)
    while not value:  # all-zero ids are invalid
        value = random.getrandbits(bits)
    return value


def enter_passive(traceparent: bytes | None) -> tuple[str, Token[tuple[str, str, str] | None]]:
    """Start the trace context of a request without the SDK; returns (trace_id, reset token)."""
    parent = parse_traceparent(traceparent) if traceparent is not None else None
    span_id = f"{random_id(64):016x}"
    if parent is None:
        ids = (f"{random_id(128):032x}", span_id, "00")
    else:
        ids = (parent[0], span_id, parent[2])
    return ids[0], _trace_ids_var.set(ids)


def exit_passive(token: Token[tuple[str, str, str] | None]) -> None:
    _trace_ids_var.reset(token)


class _AsgiHeadersGetter(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads propagation headers straight from the ASGI ``scope["headers"]`` list."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_HEADERS_GETTER: Final = _AsgiHeadersGetter()


class ServerSpan:
    """The SERVER span of one request in active mode (see :func:`start_server_span`)."""

    __slots__ = ("_context_token", "_ids_token", "method", "span", "trace_id")

    def __init__(
        self,
        span: trace.Span,
        method: str,
        trace_id: str,
        context_token: Token[otel_context.Context],
        ids_token: Token[tuple[str, str, str] | None],
    ) -> None:
        self.span = span
        self.method = method
        self.trace_id = trace_id
        self._context_token = context_token
        self._ids_token = ids_token

    def finish(self, route: str | None, status: int, exc: BaseException | None) -> None:
        """Name the span after the route, record the status, end it and restore the context."""
        span = self.span
        if span.is_recording():
            if route is not None:
                span.update_name(f"{self.method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if exc is not None:
                span.record_exception(exc)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        span.end()

    def detach(self) -> None:
        """Restore the context as it was before the request (after the last log line)."""
        _trace_ids_var.reset(self._ids_token)
        otel_context.detach(self._context_token)


_SPAN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def start_server_span(method: str, headers: Iterable[tuple[bytes, bytes]]) -> ServerSpan | None:
    """Start and attach the SERVER span of a request; None when tracing is not active."""
    tracer = _tracer
    if tracer is None:
        return None
    carrier = headers if isinstance(headers, Sequence) else list(headers)
    parent = propagate.extract(carrier, getter=_HEADERS_GETTER)
    if method in _SPAN_METHODS:
        name_method, attr_method = method, method
    else:  # semantic conventions: never put an arbitrary method in span names or attributes
        name_method, attr_method = "HTTP", "_OTHER"
    span = tracer.start_span(
        name_method,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": attr_method},
    )
    context_token = otel_context.attach(trace.set_span_in_context(span, parent))
    span_context = span.get_span_context()
    trace_id = format_trace_id(span_context.trace_id)
    flags = "01" if span_context.trace_flags.sampled else "00"
    ids_token = _trace_ids_var.set((trace_id, format_span_id(span_context.span_id), flags))
    return ServerSpan(span, name_method, trace_id, context_token, ids_token)

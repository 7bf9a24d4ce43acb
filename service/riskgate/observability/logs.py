"""Structured logging: one JSON object per line on stdout.

Every line has ``ts`` (RFC 3339, UTC, milliseconds), ``level``, ``logger`` and ``msg``; inside a
request also ``request_id``, ``trace_id`` and ``span_id``; then the fields a caller passed with
``extra={...}`` (values msgspec cannot encode are dropped), and ``exception`` (the formatted
traceback) when ``exc_info`` is given.

What must never be logged: request or response bodies, query strings, headers, secrets (API keys,
tokens, webhook signing secrets, DSNs with passwords) and personal data. Log identifiers and
outcomes, not payloads. The access log line (written by the middleware) carries method, route,
path without the query string, status, duration, request id and trace id, nothing else.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from itertools import islice
from typing import Any, Final, TextIO

import msgspec

from riskgate.observability.tracing import INVALID_TRACE_ID, current_trace_context

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "current_request_id",
    "request_id_var",
]

request_id_var: ContextVar[str | None] = ContextVar("riskgate_request_id", default=None)
"""The id of the request being served (set by the middleware), None outside requests."""


def current_request_id() -> str | None:
    return request_id_var.get()


# Attributes every LogRecord has; anything else on a record came from ``extra=``. LogRecord's
# __init__ sets them first, so extras start at index _N_RECORD_ATTRS of the record's __dict__.
_PLAIN_RECORD: Final = logging.LogRecord("", logging.INFO, "", 0, "", None, None)
_N_RECORD_ATTRS: Final = len(_PLAIN_RECORD.__dict__)
_RECORD_ATTRS: Final = frozenset(_PLAIN_RECORD.__dict__) | {"message", "asctime", "taskName"}
# Output fields an ``extra=`` key may not overwrite, and uvicorn's ANSI-coloured copy of its msg.
_RESERVED: Final = frozenset(
    {"ts", "level", "logger", "msg", "exception", "stack", "color_message"}
)
_SKIPPED: Final = _RECORD_ATTRS | _RESERVED

_encoder: Final = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring for the fields)."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:  # strftime once a second, not once a line
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        trace_id, span_id = current_trace_context()
        if trace_id != INVALID_TRACE_ID:
            line["trace_id"] = trace_id
            line["span_id"] = span_id
        attrs = record.__dict__
        extra_keys = [key for key in islice(attrs, _N_RECORD_ATTRS, None) if key not in _SKIPPED]
        for key in extra_keys:
            line[key] = attrs[key]
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            line["exception"] = record.exc_text
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return _encoder.encode(line).decode()
        except (TypeError, ValueError, OverflowError):
            for key in extra_keys:  # drop the extra fields msgspec cannot encode
                try:
                    _encoder.encode(line[key])
                except (TypeError, ValueError, OverflowError):
                    del line[key]
            return _encoder.encode(line).decode()


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call replaces it."""


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default: stdout) as JSON lines, at ``level``.

    Replaces the root logger's handlers; routes uvicorn's loggers through the same handler and
    silences ``uvicorn.access`` (the middleware writes the access line). Call it in every worker
    process, and run uvicorn with ``log_config=None`` so uvicorn does not reconfigure logging.
    """
    handler = _JsonHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        if isinstance(old, _JsonHandler):
            old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The JSON lines never show thread or multiprocessing names; not looking them up saves ~1 us
    # per record (the "Optimization" section of the logging HOWTO).
    logging.logThreads = False
    logging.logMultiprocessing = False

    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx and httpcore log every outgoing URL, query string included, at INFO/DEBUG.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False  # with no handler anywhere uvicorn skips formatting access lines
    access.setLevel(logging.CRITICAL + 1)

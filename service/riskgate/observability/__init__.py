"""Metrics, structured logs and trace context for riskgate (see each module's docstring).

Wiring, in the app factory of every worker process::

    configure_logging(settings.log_level)
    configure_tracing("riskgate-api")
    litestar_app = Litestar(..., logging_config=None)  # Litestar must not reconfigure logging
    app = ObservabilityMiddleware(litestar_app)        # the ASGI callable uvicorn serves

and uvicorn run with ``log_config=None, access_log=False``, ``PROMETHEUS_MULTIPROC_DIR`` set (to an
empty directory) before any worker starts when there are several workers. Pass
``after_exception=[log_unhandled_exception]`` to Litestar unless an exception handler for
``Exception`` already logs the traceback.
"""

from riskgate.observability.logs import configure_logging, current_request_id, request_id_var
from riskgate.observability.metrics import render_metrics
from riskgate.observability.middleware import ObservabilityMiddleware, log_unhandled_exception
from riskgate.observability.tracing import (
    configure_tracing,
    current_trace_context,
    format_traceparent,
)

__all__ = [
    "ObservabilityMiddleware",
    "configure_logging",
    "configure_tracing",
    "current_request_id",
    "current_trace_context",
    "format_traceparent",
    "log_unhandled_exception",
    "render_metrics",
    "request_id_var",
]

"""JSON logs (one object per line on stderr) and OpenTelemetry tracing for the server."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from opentelemetry.trace import TracerProvider

from maestro.monitoring.tracing import otlp_tracer_provider, trace_ids
from maestro.serving import contract

OTLP_ENDPOINT_ENV = contract.OTLP_ENDPOINT
SERVICE_NAME = "maestro-serving"

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the `extra` fields, the
    exception, and the trace and span ids when logged inside a span."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        ids = trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Route every logger (uvicorn's included) through one JSON handler on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library warnings (sklearn, MLflow) become log records too, so stderr stays JSON.
    logging.captureWarnings(True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # MLflow and friends are chatty at INFO while loading; their warnings still show.
    for name in ("mlflow", "urllib3", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def tracer_provider(environ: Mapping[str, str], attributes: Mapping[str, str]) -> TracerProvider:
    """An SDK provider exporting over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set;
    otherwise a no-op provider, so an unconfigured server pays nothing for spans."""
    return otlp_tracer_provider(environ.get(OTLP_ENDPOINT_ENV), SERVICE_NAME, attributes)

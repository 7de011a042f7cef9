"""Kubernetes Events on the objects the operator reconciles, through Kopf's poster."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

log = logging.getLogger(__name__)


def emit(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    # kopf.event rather than kopf.info: settings.posting.level silences kopf.info, and that
    # level is raised so Kopf's own per-handler chatter does not flood the object's Events.
    body = obj if isinstance(obj, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(obj)))
    kopf.event(body, type=type_, reason=reason, message=message)
    # Also a log line, as kopf.info makes one: inside a reconcile it carries the trace id
    # (operators.core.tracing), which leads from the Event to the reconcile's trace.
    meta = obj.get("metadata") or {}
    log.log(
        logging.WARNING if type_ == "Warning" else logging.INFO,
        "[%s/%s] %s: %s",
        meta.get("namespace"),
        meta.get("name"),
        reason,
        message,
    )


def one_line(err: BaseException) -> str:
    """An error as one line for a condition message or an Event (bounded)."""
    return (" ".join(str(err).split()) or type(err).__name__)[:500]

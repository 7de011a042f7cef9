"""The drift result, one contract for both sides: `maestro drift check` / the DriftCheck
job write it, the DriftCheck controller reads it into the status. The JSON names are the
status's names (driftShare, severity, columns[].name/test/score/threshold/drifted).

Exit codes of `maestro drift check` and `maestro drift run`:
  0  the check ran (whatever it found); 2  bad input (a reference that cannot be read, a
  column missing on one side, an empty window, an all-null column), so a Job does not
  retry it; 3  a service (object store, MLflow) unreachable, worth retrying.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

# The job's result document in the object store, beside the HTML report.
RESULT_FILE = "result.json"
REPORT_FILE = "report.html"
# Where reference statistics of references with no folder beside them (sklearn://,
# runs:/) are cached: a local folder or an s3:// prefix.
REFSTATS_DIR_ENV = "MAESTRO_REFSTATS_DIR"


class Severity(StrEnum):
    OK = "Ok"
    WARNING = "Warning"
    CRITICAL = "Critical"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ColumnDrift(_Model):
    name: str
    test: str = Field(description="Statistical test used, e.g. ks, wasserstein, psi.")
    score: float | None = Field(description="p-value (ks, chisquare, z) or distance.")
    threshold: float
    drifted: bool


class DriftResult(_Model):
    drift_share: float = Field(ge=0, le=1)
    severity: Severity
    columns: list[ColumnDrift]
    reference_rows: int = 0
    current_rows: int = 0
    # Filled by the job (`maestro drift run`), not by a plain `maestro drift check`.
    report_uri: str | None = None
    mlflow_run_id: str | None = None

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.drifted]


class DriftFailure(_Model):
    """What a run that could not check writes instead (exit code 2 or 3)."""

    reason: str = Field(description="CamelCase, e.g. ReferenceUnreadable, ColumnMissing.")
    message: str


def severity_of(drift_share: float, warning: float, critical: float) -> Severity:
    """Pure: the severity of a drift share against the DriftCheck's thresholds."""
    if drift_share >= critical:
        return Severity.CRITICAL
    if drift_share >= warning:
        return Severity.WARNING
    return Severity.OK


# --- the termination message: how a run's outcome reaches the operator --------------------
# The kubelet keeps at most 4096 bytes of it. Columns go as [name, test, score, threshold,
# drifted] rows; when they do not fit, only the drifted ones do ("truncated": the report
# and the MLflow run hold them all).
MESSAGE_LIMIT = 4000


def encode_message(outcome: DriftResult | DriftFailure, limit: int = MESSAGE_LIMIT) -> str:
    if isinstance(outcome, DriftFailure):
        return json.dumps({"failure": outcome.model_dump(by_alias=True)})[:limit]
    head = outcome.model_dump(by_alias=True, mode="json", exclude={"columns"})

    def rows(columns: list[ColumnDrift]) -> list[list[object]]:
        return [
            [
                c.name,
                c.test,
                None if c.score is None else float(f"{c.score:.6g}"),
                c.threshold,
                int(c.drifted),
            ]
            for c in columns
        ]

    text = json.dumps({**head, "c": rows(outcome.columns)}, separators=(",", ":"))
    if len(text) <= limit:
        return text
    drifted = [c for c in outcome.columns if c.drifted]
    while True:
        text = json.dumps({**head, "c": rows(drifted), "truncated": True}, separators=(",", ":"))
        if len(text) <= limit or not drifted:
            return text
        drifted = drifted[:-1]


def decode_message(text: str) -> tuple[DriftResult | DriftFailure, bool]:
    """The outcome a run wrote, and whether its column list was cut. ValueError when the
    text is not such a message (a crash's log tail, say)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a drift run's message: {text[:200]!r}") from err
    if not isinstance(doc, dict):
        raise ValueError(f"not a drift run's message: {text[:200]!r}")
    if "failure" in doc:
        return DriftFailure.model_validate(doc["failure"]), False
    columns = [
        ColumnDrift(name=n, test=t, score=s, threshold=th, drifted=bool(d))
        for n, t, s, th, d in doc.pop("c", [])
    ]
    truncated = bool(doc.pop("truncated", False))
    return DriftResult.model_validate({**doc, "columns": columns}), truncated

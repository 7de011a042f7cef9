"""Where prediction logs live in the object store, and the columns of their Parquet files.

One layout, imported by the writer (the serving pods' shipper) and the reader (the drift
job), so neither guesses the other's paths. Hive-style partitions, so any engine reads
them as a partitioned dataset:

  <root>/namespace=<ns>/deployment=<name>/kind=<predictions|feedback>/
      revision=<revision>/hour=<YYYY-MM-DDTHH>/<pod>-<first row's epoch ms>-<seq>.parquet

Prediction files hold one row per input row: the metadata columns below (prefixed with `_`
so they never collide with a feature's name), then one column per input feature as the
model's signature names it (`input_<i>` for a model without column names), then
`_output_<name>` per output. Pure: no I/O.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

PREDICTIONS = "predictions"
FEEDBACK = "feedback"

TIMESTAMP = "_timestamp"
REQUEST_ID = "_request_id"
MODEL = "_model"
MODEL_VERSION = "_model_version"
VARIANT = "_variant"
OUTCOME = "_outcome"  # feedback: the outcome as JSON text (a label, a number, ...)
OUTPUT_PREFIX = "_output_"
META_PREFIX = "_"

_HOUR = "%Y-%m-%dT%H"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def deployment_root(root: str, namespace: str, deployment: str) -> str:
    """The prefix under which one ModelDeployment's pods write (the operator renders it)."""
    return f"{root.rstrip('/')}/namespace={namespace}/deployment={deployment}"


def hour_of(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime(_HOUR)


def partition(base: str, kind: str, revision: str, hour: str) -> str:
    """`base`: a deployment_root."""
    return f"{base.rstrip('/')}/kind={kind}/revision={revision}/hour={hour}"


def object_name(pod: str, first_ms: int, seq: int) -> str:
    return f"{_SAFE.sub('_', pod) or 'pod'}-{first_ms}-{seq:06d}.parquet"


def hours_between(start: datetime.datetime, end: datetime.datetime) -> Iterator[str]:
    """Every hour partition a record written in [start, end] can be in, oldest first."""
    hour = start.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        yield hour.strftime(_HOUR)
        hour += datetime.timedelta(hours=1)


def hour_from_key(key: str) -> str | None:
    """The `hour=` partition value in an object key, or None."""
    match = re.search(r"/hour=([0-9T-]+)/", key)
    return match.group(1) if match else None


def kind_from_key(key: str) -> str | None:
    match = re.search(r"/kind=([a-z]+)/", key)
    return match.group(1) if match else None


def is_feature(column: str) -> bool:
    return not column.startswith(META_PREFIX)

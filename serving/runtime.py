"""A served model: a loaded model behind its batcher, with its metrics and batch spans."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, Tracer

from maestro.serving.batching import Batcher, QueueFull, Stopped
from maestro.serving.errors import Overloaded, PredictError, ServingError, Unavailable
from maestro.serving.loader import LoadedModel
from maestro.serving.metrics import ModelMetrics
from maestro.serving.outputs import OutputError, Outputs, normalise
from maestro.serving.schema import Payload

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    payload: Payload
    span: SpanContext


@dataclass(slots=True)
class Answer:
    """One request's share of a batch: its outputs and its validated input rows."""

    outputs: Outputs
    inputs: np.ndarray[Any, Any]


class ServedModel:
    def __init__(
        self,
        model: LoadedModel,
        metrics: ModelMetrics,
        tracer: Tracer,
        *,
        max_batch_size: int,
        max_wait: float,
        max_queue: int,
        observe_batches: bool = True,
    ) -> None:
        self.model = model
        self._observe_batches = observe_batches
        self.name = model.name
        self.version = model.version
        self.metrics = metrics
        self._tracer = tracer
        self._max_queue = max_queue
        self._batcher: Batcher[Job, Answer] = Batcher(
            self._predict_batch,
            name=model.name,
            max_batch_size=max_batch_size,
            max_wait=max_wait,
            max_queue=max_queue,
        )

    def start(self, loop: asyncio.AbstractEventLoop, *, report: bool = True) -> None:
        """Start the inference thread; `report` sets the model's info and load-time gauges
        (not for a shadow, which shares the served model's labels)."""
        self._batcher.start(loop)
        if report:
            self.metrics.queue(lambda: self._batcher.queued, self._max_queue)
            self.metrics.loaded(self.model.load_seconds)

    def stop(self, timeout: float | None = None) -> None:
        self._batcher.stop(timeout)

    async def infer(self, payload: Payload) -> Answer:
        span = trace.get_current_span().get_span_context()
        try:
            future = self._batcher.submit(Job(payload, span))
        except QueueFull:
            raise Overloaded(f"model {self.name!r} is overloaded: its queue is full") from None
        except Stopped:
            raise Unavailable("the server is shutting down") from None
        return await future

    # --- on the inference thread ------------------------------------------------------------
    def _predict_batch(self, jobs: Sequence[Job]) -> list[Answer | BaseException]:
        results: list[Answer | BaseException | None] = [None] * len(jobs)
        arrays: list[np.ndarray[Any, Any]] = []
        owners: list[int] = []
        for i, job in enumerate(jobs):
            try:
                arrays.append(self.model.to_array(job.payload))
                owners.append(i)
            except ServingError as err:
                results[i] = err
        for group in _mergeable_groups(arrays):
            self._predict_group(
                [arrays[k] for k in group], [owners[k] for k in group], jobs, results
            )
        return [r if r is not None else PredictError("no answer") for r in results]

    def _predict_group(
        self,
        arrays: list[np.ndarray[Any, Any]],
        owners: list[int],
        jobs: Sequence[Job],
        results: list[Answer | BaseException | None],
    ) -> None:
        merged = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        links = [Link(jobs[i].span) for i in owners if jobs[i].span.is_valid]
        if self._observe_batches:
            self.metrics.batch_size.observe(len(arrays))
        with self._tracer.start_as_current_span(
            "predict",
            links=links,
            attributes={
                "maestro.model": self.name,
                "maestro.model_version": self.version,
                "maestro.batch.requests": len(arrays),
                "maestro.batch.rows": len(merged),
            },
        ) as span:
            try:
                outputs = normalise(self.model.predict(merged), len(merged), self.model.output_name)
            except OutputError as err:
                failure: BaseException = PredictError(f"model {self.name!r}: {err}")
            except Exception as err:
                failure = PredictError(f"model {self.name!r} failed: {type(err).__name__}: {err}")
            else:
                start = 0
                for array, owner in zip(arrays, owners, strict=True):
                    stop = start + len(array)
                    results[owner] = Answer(outputs.slice(start, stop), array)
                    start = stop
                return
            span.record_exception(failure)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(failure)))
            log.warning("predict failed", extra={"model": self.name, "error": str(failure)})
            for owner in owners:
                results[owner] = failure


def _mergeable_groups(arrays: Sequence[np.ndarray[Any, Any]]) -> list[list[int]]:
    """Indexes of arrays that can be concatenated into one predict (same dtype and row
    shape); with a signature that is all of them, without one it may not be."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, array in enumerate(arrays):
        groups.setdefault((array.dtype, array.shape[1:]), []).append(i)
    return list(groups.values())

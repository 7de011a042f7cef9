"""Micro-batching on an inference thread, and the background prediction log."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from maestro.serving.batching import Batcher, QueueFull, Stopped
from maestro.serving.outputs import normalise
from maestro.serving.predlog import PredictionLog

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


class HeldHandler:
    """Multiplies by ten; holds its first batch until released, so later items queue up."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.threads.add(threading.current_thread().name)
        self.started.set()
        if not self.batches:
            assert self.release.wait(10), "the test never released the first batch"
        self.batches.append(list(items))
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


def batcher(handler: HeldHandler, *, max_batch: int = 8, max_queue: int = 100) -> Batcher[int, int]:
    b: Batcher[int, int] = Batcher(
        handler, name="test", max_batch_size=max_batch, max_wait=0.0, max_queue=max_queue
    )
    b.start(asyncio.get_running_loop())
    return b


async def test_concurrent_requests_merge_into_batches_in_fifo_order() -> None:
    handler = HeldHandler()
    b = batcher(handler)
    futures = [b.submit(i) for i in range(20)]
    await asyncio.to_thread(handler.started.wait, 10)
    handler.release.set()
    assert await asyncio.gather(*futures) == [i * 10 for i in range(20)]
    assert [i for batch in handler.batches for i in batch] == list(range(20))
    assert max(len(batch) for batch in handler.batches) == 8
    assert handler.threads == {"infer-test"}, "inference runs on the model's own thread"
    await asyncio.to_thread(b.stop)


async def test_a_batch_window_ends_as_soon_as_the_batch_is_full() -> None:
    # During a window the thread is woken only when the batch can be filled, not per
    # request: a full batch must still end the window at once, long before its 30 s.
    handler = HeldHandler()
    b: Batcher[int, int] = Batcher(
        handler, name="window", max_batch_size=4, max_wait=30.0, max_queue=100
    )
    b.start(asyncio.get_running_loop())
    first = b.submit(0)
    await asyncio.to_thread(handler.started.wait, 10)
    pair = [b.submit(1), b.submit(2)]  # queued behind the held batch: the next one, of 2
    handler.release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *pair), 10) == [0, 10, 20]
    lone = b.submit(3)  # after a batch of 2, this one opens a window
    await asyncio.sleep(0.2)
    rest = [b.submit(i) for i in (4, 5, 6)]
    assert await asyncio.wait_for(asyncio.gather(lone, *rest), 10) == [30, 40, 50, 60]
    assert handler.batches[-1] == [3, 4, 5, 6]
    await asyncio.to_thread(b.stop)


async def test_a_full_queue_refuses_and_a_failure_stays_with_its_request() -> None:
    handler = HeldHandler()
    b = batcher(handler, max_queue=2)
    first = b.submit(1)
    await asyncio.to_thread(handler.started.wait, 10)  # item 1 is being predicted
    queued = [b.submit(-2), b.submit(3)]
    with pytest.raises(QueueFull):
        b.submit(4)
    handler.release.set()
    assert await first == 10
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert isinstance(results[0], ValueError) and str(results[0]) == "bad -2"
    assert results[1] == 30
    await asyncio.to_thread(b.stop)


async def test_stop_answers_what_is_queued_then_refuses() -> None:
    handler = HeldHandler()
    b = batcher(handler, max_batch=2)
    futures = [b.submit(i) for i in range(5)]
    await asyncio.to_thread(handler.started.wait, 10)
    handler.release.set()
    await asyncio.to_thread(b.stop, 10)
    assert await asyncio.gather(*futures) == [0, 10, 20, 30, 40]
    with pytest.raises(Stopped):
        b.submit(5)


async def test_a_handler_that_raises_fails_its_whole_batch_only() -> None:
    calls = []

    def handler(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("model exploded")
        return list(items)

    b: Batcher[int, int] = Batcher(handler, name="boom", max_batch_size=1, max_wait=0, max_queue=9)
    b.start(asyncio.get_running_loop())
    first, second = b.submit(1), b.submit(2)
    with pytest.raises(RuntimeError, match="model exploded"):
        await first
    assert await second == 2
    await asyncio.to_thread(b.stop)


def test_prediction_log_writes_sampled_predictions_and_all_feedback(tmp_path: Path) -> None:
    path = tmp_path / "log" / "predictions.jsonl"
    log = PredictionLog(path, sample=1.0, deployment="fraud", revision="v2")
    outputs = normalise(np.array([1, 0]), 2)
    inputs = np.array([[1.5, 2.0], [3.0, 4.0]])
    assert log.sampled()
    log.record_prediction(
        request_id="r1",
        model="m",
        model_version="7",
        inputs=inputs,
        columns=["a", "b"],
        outputs=outputs,
    )
    log.record_feedback(request_id="r1", model="m", outcome=True)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["prediction", "feedback"]
    prediction, feedback = lines
    assert prediction["inputs"] == [{"a": 1.5, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    assert prediction["outputs"] == {"predict": [1, 0]}
    assert (prediction["deployment"], prediction["revision"], prediction["model_version"]) == (
        "fraud",
        "v2",
        "7",
    )
    assert feedback["request_id"] == "r1" and feedback["outcome"] is True


def test_prediction_log_sampling_rate(tmp_path: Path) -> None:
    never = PredictionLog(tmp_path / "a.jsonl", sample=0.0, deployment="", revision="", seed=1)
    half = PredictionLog(tmp_path / "b.jsonl", sample=0.5, deployment="", revision="", seed=1)
    assert not any(never.sampled() for _ in range(1000))
    assert 400 < sum(half.sampled() for _ in range(1000)) < 600
    never.close()
    half.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

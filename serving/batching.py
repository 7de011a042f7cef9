"""Adaptive micro-batching: requests from the event loop are merged into one call on an
inference thread (one per model), and the answers go back to each request's future.

- FIFO: one deque, taken from the front, so requests are answered in arrival order.
- Bounded: `submit` raises `QueueFull` once `max_queue` requests wait (the caller answers
  503 with Retry-After) instead of letting latency grow without bound.
- Adaptive: the thread takes whatever is queued, up to `max_batch_size`. It waits up to
  `max_wait` for more only when the previous batch held more than one request, so a lone
  client never pays the wait, while under concurrency batches fill up.
- One wake-up of the event loop per batch (not per request) hands back all the answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """More requests are waiting than the queue holds."""


class Stopped(Exception):
    """The batcher no longer takes requests (the server is shutting down)."""


class Batcher(Generic[T, R]):
    def __init__(
        self,
        handler: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        name: str,
        max_batch_size: int,
        max_wait: float,
        max_queue: int,
    ) -> None:
        self._handler = handler
        self._max_batch = max_batch_size
        self._max_wait = max_wait
        self._max_queue = max_queue
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._last_batch = 0
        self._wanted = 1  # queued requests that make submit wake the thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"infer-{name}", daemon=True)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue an item (from the event loop's thread); await the returned future."""
        assert self._loop is not None, "Batcher.start() was not called"
        future: asyncio.Future[R] = self._loop.create_future()
        with self._cond:
            if self._stopping:
                raise Stopped("shutting down")
            if len(self._queue) >= self._max_queue:
                raise QueueFull(f"{len(self._queue)} requests already queued")
            self._queue.append((item, future))
            # Wake the thread only when it can act: while it waits out a batch window, a
            # wake-up per request would take the GIL from the event loop for nothing.
            if len(self._queue) >= self._wanted:
                self._cond.notify()
        return future

    def stop(self, timeout: float | None = None) -> None:
        """Take no more requests, answer the queued ones, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the inference thread ---------------------------------------------------------------
    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            batch = self._pop(self._max_batch)
            if self._last_batch > 1 and self._max_wait > 0 and 0 < len(batch) < self._max_batch:
                deadline = time.monotonic() + self._max_wait
                while len(batch) < self._max_batch and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    # Woken when the batch can be filled (or at the deadline), not per request.
                    self._wanted = self._max_batch - len(batch)
                    if len(self._queue) < self._wanted:
                        self._cond.wait(remaining)
                    batch.extend(self._pop(self._max_batch - len(batch)))
                self._wanted = 1
            return batch

    def _pop(self, count: int) -> list[tuple[T, asyncio.Future[R]]]:
        taken: list[tuple[T, asyncio.Future[R]]] = []
        while self._queue and len(taken) < count:
            taken.append(self._queue.popleft())
        return taken

    def _run(self) -> None:
        assert self._loop is not None
        while True:
            batch = self._take()
            if not batch:
                return  # stopping and drained
            self._last_batch = len(batch)
            items = [item for item, _ in batch]
            try:
                results: Sequence[R | BaseException] = self._handler(items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"batch handler returned {len(results)} results for {len(items)} items"
                    )
            except BaseException as err:  # the handler's own failure fails its batch only
                results = [err] * len(items)
            futures = [future for _, future in batch]
            try:
                self._loop.call_soon_threadsafe(_resolve, futures, results)
            except RuntimeError:
                return  # the event loop is closed: nobody waits for these answers


def _resolve(futures: list[asyncio.Future[R]], results: Sequence[R | BaseException]) -> None:
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

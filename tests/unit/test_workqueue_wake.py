"""WorkQueue.wake: a reconcile asked for from a thread of our own (a watch of owned objects)
runs in the context the framework gave the first reconcile, where Kopf keeps what posting
an Event needs; the watch thread's own, empty context would make every Event fail."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from maestro.operators.core.workqueue import WorkQueue

pytestmark = pytest.mark.unit

# Stands for Kopf's settings and event queue variables.
HANDLER = contextvars.ContextVar[str]("handler")


class Step:
    def __init__(self, seen: list[str | None]) -> None:
        self.seen = seen

    def run(self) -> None:
        self.seen.append(HANDLER.get(None))

    def report_error(self, err: Exception) -> None:
        raise AssertionError(err)


def test_a_reconcile_woken_from_a_watch_thread_runs_in_the_handlers_context() -> None:
    seen: list[str | None] = []
    done = threading.Event()

    def reconcile(namespace: str, name: str) -> None:
        queue.process(namespace, name, lambda: {"metadata": {}}, lambda obj: Step(seen))
        done.set()

    queue = WorkQueue("ModelDeployment", reconcile)
    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(2))
    queue.loop = loop
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        # The first reconcile comes from a handler, in the framework's context.
        handler = contextvars.copy_context()
        handler.run(HANDLER.set, "kopf")
        handler.run(reconcile, "ns", "md")
        assert seen == ["kopf"]
        done.clear()
        # A watch thread, whose context has nothing of the handler's.
        watcher = threading.Thread(target=queue.wake, args=("ns", "md"))
        watcher.start()
        watcher.join()
        assert done.wait(5), "the woken reconcile never ran"
        assert seen == ["kopf", "kopf"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()

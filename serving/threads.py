"""Blocking work the server runs beside its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar, cast

from maestro.serving.settings import ServeSettings

T = TypeVar("T")


async def in_daemon_thread(fn: Callable[[ServeSettings], T], settings: ServeSettings) -> T:
    """`fn(settings)` in a daemon thread of its own. asyncio.to_thread's pool threads are
    joined when the event loop closes, so a load stuck retrying an unreachable MLflow kept
    the process alive after SIGTERM; a daemon thread is abandoned at exit instead."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(T, result))

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn(settings)
        except BaseException as err:  # handed to the awaiting task
            error = err
        # The loop is closed when the process stopped while loading: nothing to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="model-loader", daemon=True).start()
    return await future

"""Open-loop load for the overload and soak tests: requests sent at a fixed rate whatever
the server answers (a closed-loop client slows down with the server and never overloads
it), each one's outcome and latency recorded, and the server's memory sampled."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

BODY = b'{"instances": [[0.0, 1.0]]}'


@dataclass
class Outcome:
    sent: float  # seconds since the run began
    status: int  # 0: no HTTP answer (connection refused or reset)
    seconds: float
    retry_after: str | None = None


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (second, MB)

    def answered(self, status: int, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status and o.sent >= since]

    def p99(self, status: int, since: float = 0.0) -> float:
        latencies = sorted(o.seconds for o in self.answered(status, since))
        return latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("inf")


def rss_mb(pid: int) -> float | None:
    """The process's resident memory; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None  # a zombie: no memory left


async def _one(session: aiohttp.ClientSession, url: str, began: float, run: Run) -> None:
    sent = time.monotonic()
    try:
        async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
            await r.read()
            outcome = Outcome(sent - began, r.status, time.monotonic() - sent)
            outcome.retry_after = r.headers.get("retry-after")
    except (TimeoutError, aiohttp.ClientError):
        outcome = Outcome(sent - began, 0, time.monotonic() - sent)
    run.outcomes.append(outcome)


async def open_loop(url: str, rate: float, seconds: float, pid: int) -> Run:
    """`rate` requests per second for `seconds`, then every answer awaited."""
    run = Run()
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        began = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        next_sample, sent = 0.0, 0
        while (now := time.monotonic() - began) < seconds:
            if now >= next_sample:
                if (mb := rss_mb(pid)) is not None:
                    run.rss_mb.append((now, mb))
                next_sample += 1.0
            due = int(now * rate) + 1
            for _ in range(due - sent):
                task = asyncio.create_task(_one(session, url, began, run))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent = due
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    return run


async def closed_loop(url: str, clients: int, seconds: float) -> float:
    """Answers per second of `clients` that each send the next request once answered:
    what one server sustains."""
    run = Run()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        began = time.monotonic()

        async def client() -> None:
            while time.monotonic() - began < seconds:
                await _one(session, url, began, run)

        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - began
    return len(run.answered(200)) / elapsed

"""Each local pod's real resource usage, as the kubelet's resource metrics would report it:
per container, the CPU (cores, averaged over the last window) and the resident memory of
its process group, read from /proc. The pod runner writes them as pod annotations, which
kwok's ClusterResourceUsage (components.kwok_config) turns into the kubelet resource
metrics that metrics-server scrapes.

Every container's processes share one process group, whose id is the main process's pid
(the runner starts each with `start_new_session`). CPU is the sum of `utime + stime` of
the group's live processes: time spent by a child that has exited is lost (its parent's
`cutime` is not counted), as a cgroup would not lose it; a window where the sum falls
counts as idle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CPU_ANNOTATION = "maestro.dev/usage-cpu."
MEMORY_ANNOTATION = "maestro.dev/usage-memory."
# How often the runner measures (seconds).
INTERVAL = 5.0
# Never 0: metrics-server drops a whole pod when a container reads 0 (kwok's defaults).
MIN_MILLICORES = 1
MIN_BYTES = 1 << 20
# A value is written again only when it moved by more than this share of the last one
# written, and by more than the absolute step: pod updates stay rare for steady pods.
CHANGE = 0.10
CPU_STEP_MILLICORES = 20
MEMORY_STEP_BYTES = 4 << 20


@dataclass(frozen=True)
class Sample:
    cpu_seconds: float
    rss_bytes: int


def parse_stat(stat: str, page_size: int, ticks: int) -> tuple[int, Sample]:
    """(process group, usage) of one /proc/<pid>/stat line: the fields after the command
    (which may hold spaces and parentheses) are state (3), ppid, pgrp (5), ..., utime (14),
    stime (15), ..., rss in pages (24)."""
    fields = stat.rsplit(")", 1)[1].split()
    pgrp = int(fields[2])
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return pgrp, Sample(cpu, int(fields[21]) * page_size)


def sample_groups(groups: set[int], proc: Path = Path("/proc")) -> dict[int, Sample]:
    """Usage of each process group of `groups`, summed over its live processes (one pass
    over /proc); a group with no process left is absent."""
    page_size = os.sysconf("SC_PAGE_SIZE")
    ticks = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, float] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            stat = (proc / entry / "stat").read_text()
            pgrp, sample = parse_stat(stat, page_size, ticks)
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        if pgrp in groups:
            cpu[pgrp] = cpu.get(pgrp, 0.0) + sample.cpu_seconds
            rss[pgrp] = rss.get(pgrp, 0) + sample.rss_bytes
    return {g: Sample(cpu[g], rss[g]) for g in cpu}


def cores(before: Sample, after: Sample, seconds: float) -> float:
    """Average cores between two samples of one group (0 when its CPU sum fell: a process
    of the group ended)."""
    if seconds <= 0:
        return 0.0
    return max(0.0, after.cpu_seconds - before.cpu_seconds) / seconds


def cpu_quantity(cores_used: float) -> str:
    return f"{max(MIN_MILLICORES, round(cores_used * 1000))}m"


def memory_quantity(rss_bytes: int) -> str:
    return str(max(MIN_BYTES, rss_bytes))


def quantity_value(q: str) -> float:
    """The two forms written here: millicores ("412m") and bytes ("187342848")."""
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def moved(old: str | None, new: str, step: float) -> bool:
    """Whether `new` differs enough from `old` (the value written last) to write it."""
    if old is None:
        return True
    try:
        before, after = quantity_value(old), quantity_value(new)
    except ValueError:
        return True
    diff = abs(after - before)
    return diff > step and diff > CHANGE * before


def annotations_to_write(written: Mapping[str, str], measured: Mapping[str, str]) -> dict[str, str]:
    """Of the `measured` annotations, those that moved noticeably from what is `written`."""
    out = {}
    for key, value in measured.items():
        if key.startswith(CPU_ANNOTATION):
            step = CPU_STEP_MILLICORES / 1000
        else:
            step = float(MEMORY_STEP_BYTES)
        if moved(written.get(key), value, step):
            out[key] = value
    return out

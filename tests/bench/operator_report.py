"""The rows of `make bench-operator`'s tables, with the goals of the operator at scale:
p95 from a custom resource to all its children under 1 s at steady state, no write on an
idle resync (nor for settled objects after a restart), under 300 MB for 1,000
ModelDeployments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

P95_GOAL_S = 1.0
MEMORY_GOAL_MB = 300.0


def registry_rows(r: Mapping[str, Any]) -> list[list[str]]:
    per_deployment = r["deployments"] / r["interval"]
    return [
        ["ModelDeployments / distinct models", f"{r['deployments']} / {r['models']}", ""],
        ["registry poll interval", f"{r['interval']:g} s", ""],
        ["time until all report ModelNotFound", f"{r['settle_seconds']:.0f} s", ""],
        ["registry requests until then", f"{r['requests_to_settle']:.0f}", ""],
        [
            "registry requests/s, first minute",
            f"{r['first_rate']:.2f}",
            f"{per_deployment / max(r['first_rate'], 1e-9):.0f}x fewer than one per"
            f" ModelDeployment per interval ({per_deployment:.0f}/s)",
        ],
        [
            "registry requests/s, second minute",
            f"{r['second_rate']:.2f}",
            f"{per_deployment / max(r['second_rate'], 1e-9):.0f}x fewer",
        ],
        ["operator memory (VmRSS)", f"{r['rss_mb']:.0f} MB", ""],
    ] + ([["note", r["note"], ""]] if r.get("note") else [])


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _writes(writes: Mapping[str, float]) -> str:
    total = sum(writes.values())
    if not total:
        return "0"
    parts = ", ".join(f"{v:.0f} {k}" for k, v in sorted(writes.items()) if v)
    return f"{total:.0f} ({parts})"


def _children(children: Mapping[str, float]) -> str:
    return ", ".join(f"{v:g} {k.split('.')[0]}" for k, v in children.items())


def common_rows(r: Mapping[str, Any], kind: str, memory_goal: bool) -> list[list[str]]:
    phases = ", ".join(f"{v} {k}" for k, v in r["phases"].items())
    rows = [
        [f"{kind} created / rate reached", f"{r['count']} / {r['rate']:.1f} per s", "", ""],
        ["children of each (per object)", _children(r["children"]), "", ""],
        ["phases once settled", phases, "", ""],
        [
            "create -> first child, p50 / p95",
            f"{r['first_p50'] * 1000:.0f} / {r['first_p95'] * 1000:.0f} ms",
            "",
            "",
        ],
        ["create -> all children, p50", f"{r['p50'] * 1000:.0f} ms", "", ""],
        [
            "create -> all children, p95",
            f"{r['p95'] * 1000:.0f} ms",
            f"< {P95_GOAL_S * 1000:.0f} ms",
            _met(r["p95"] < P95_GOAL_S),
        ],
        ["create -> all children, max", f"{r['max'] * 1000:.0f} ms", "", ""],
        ["API writes until settled", f"{r['writes_to_settle']:.0f}", "", ""],
        *_cpu_rows(r),
        [
            "operator memory (VmRSS), settled",
            f"{r['rss_mb']:.0f} MB",
            f"< {MEMORY_GOAL_MB:.0f} MB" if memory_goal else "",
            _met(r["rss_mb"] < MEMORY_GOAL_MB) if memory_goal else "",
        ],
        [
            f"API writes over {r['idle_window']:.0f} s idle"
            f" ({r['idle_reconciles']:.0f} reconciles meanwhile)",
            _writes(r["idle_writes"]),
            "0",
            _met(not sum(r["idle_writes"].values())),
        ],
        [
            "Events posted over the idle window",
            f"{r['idle_events']}",
            "0",
            _met(not r["idle_events"]),
        ],
        [
            "restart: process start -> last reconcile",
            f"{r['restart_seconds']:.1f} s ({r['restart_reconciles']:.0f} reconciles)",
            "",
            "",
        ],
        [
            "restart: API writes (and Events)",
            f"{_writes(r['restart_writes'])} ({r['restart_events']})",
            "0",
            _met(not sum(r["restart_writes"].values()) and not r["restart_events"]),
        ],
        ["operator memory after the restart", f"{r['rss_restart_mb']:.0f} MB", "", ""],
    ]
    return rows + ([["note", r["note"], "", ""]] if r.get("note") else [])


def deployments_rows(r: Mapping[str, Any]) -> list[list[str]]:
    return common_rows(r, "ModelDeployments", memory_goal=True)


def trainingruns_rows(r: Mapping[str, Any]) -> list[list[str]]:
    return common_rows(r, "TrainingRuns", memory_goal=False)


def _cpu_rows(r: dict[str, Any]) -> list[list[str]]:
    """Who used the machine's 2 cores from the first create until all settled (runs
    before this row was added did not record it)."""
    cpu = r.get("cpu_seconds")
    if not cpu:
        return []
    spent = ", ".join(f"{name} {seconds:.0f}" for name, seconds in cpu.items())
    return [
        [
            f"CPU seconds from the first create until settled ({r['settle_seconds']:.0f} s)",
            spent,
            "",
            "",
        ]
    ]

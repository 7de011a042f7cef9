"""A pod's status from its containers' process state, and the restart policy the status
and the supervisor both follow (pure: the caller passes the time)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ContainerSnapshot:
    """What the status needs of one container's process at one moment."""

    name: str
    image: str = ""
    pid: int | None = None  # None while no process runs
    started_at: str | None = None
    exit_code: int | None = None  # of the process that ran last
    finished_at: str | None = None
    ready: bool = False
    restarts: int = 0
    error: str | None = None  # "Reason: message" when it could not be started


def should_restart(policy: str, code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def restart_delay(restarts: int) -> float:
    """Seconds before a container that exited is started again: doubling, at most 10."""
    return min(10.0, 2.0 ** min(restarts, 4))


def container_state(
    c: ContainerSnapshot, restart_policy: str, deadline_exceeded: bool
) -> dict[str, Any]:
    if c.pid is not None:
        return {"running": {"startedAt": c.started_at}}
    if c.error and c.exit_code is None:
        reason, _, msg = c.error.partition(": ")
        return {"waiting": {"reason": reason, "message": msg}}
    if c.exit_code is None:
        return {"waiting": {"reason": "ContainerCreating"}}
    if should_restart(restart_policy, c.exit_code) and not deadline_exceeded:
        return {
            "waiting": {
                "reason": "CrashLoopBackOff" if c.exit_code else "Restarting",
                "message": f"exited with {c.exit_code}; restarting",
            }
        }
    return {
        "terminated": {
            "exitCode": c.exit_code,
            "reason": "Completed" if c.exit_code == 0 else "Error",
            "startedAt": c.started_at,
            "finishedAt": c.finished_at,
        }
    }


def container_status(
    c: ContainerSnapshot, restart_policy: str, deadline_exceeded: bool
) -> dict[str, Any]:
    return {
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "containerID": f"local://{c.pid}" if c.pid is not None else "",
        "ready": c.ready and c.pid is not None,
        "started": c.pid is not None,
        "restartCount": c.restarts,
        "state": container_state(c, restart_policy, deadline_exceeded),
    }


def phase_and_reason(
    statuses: Sequence[Mapping[str, Any]], deadline_exceeded: bool
) -> tuple[str, str | None]:
    """The pod phase from its container statuses, and the pod's reason if it has one."""
    if deadline_exceeded:
        return "Failed", "DeadlineExceeded"
    terminal = [s for s in statuses if "terminated" in s["state"]]
    if statuses and len(terminal) == len(statuses):
        failed = any(s["state"]["terminated"]["exitCode"] != 0 for s in terminal)
        return ("Failed" if failed else "Succeeded"), None
    # A container waiting to be restarted keeps the pod Running, as a kubelet's does.
    if any(
        s["started"]
        or "terminated" in s["state"]
        or s["state"].get("waiting", {}).get("reason") in ("CrashLoopBackOff", "Restarting")
        for s in statuses
    ):
        return "Running", None
    return "Pending", None


def pod_status(
    containers: Sequence[ContainerSnapshot],
    *,
    ip: str,
    start_time: str,
    restart_policy: str = "Always",
    deadline_exceeded: bool = False,
    qos_class: str = "BestEffort",
    previous: Mapping[str, Any] | None = None,
    now: str,
) -> dict[str, Any]:
    """The pod's status. A condition keeps its lastTransitionTime from `previous` (the
    status published last) while its value stays; a changed one gets `now`, so an
    unchanged pod yields a status equal to `previous`."""
    statuses = [container_status(c, restart_policy, deadline_exceeded) for c in containers]
    phase, reason = phase_and_reason(statuses, deadline_exceeded)
    ready = phase == "Running" and all(s["ready"] for s in statuses)
    prev = {c["type"]: c for c in ((previous or {}).get("conditions") or [])}

    def cond(kind: str, ok: bool) -> dict[str, Any]:
        value = "True" if ok else "False"
        old = prev.get(kind)
        since = old["lastTransitionTime"] if old and old["status"] == value else now
        return {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }

    out: dict[str, Any] = {
        "phase": phase,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": ip,
        "hostIPs": [{"ip": ip}],
        "startTime": start_time,
        "conditions": [
            cond("PodScheduled", True),
            cond("Initialized", True),
            cond("ContainersReady", ready),
            cond("Ready", ready),
        ],
        "containerStatuses": statuses,
        "qosClass": qos_class,
    }
    if reason:
        out["reason"] = reason
    return out

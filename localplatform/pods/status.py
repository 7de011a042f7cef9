"""A pod's status from its containers' process state, and the restart policy the status
and the supervisor both follow (pure: the caller passes the time)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maestro.localplatform.pods.lifecycle import go_duration

START_ERROR = "StartError"


@dataclass(frozen=True)
class Termination:
    """How one run of a container ended."""

    exit_code: int
    started_at: str | None = None
    finished_at: str | None = None
    message: str = ""  # its termination message
    reason: str | None = None  # unless Completed or Error by its exit code

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.message:
            out["message"] = self.message
        return {"terminated": out}


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
    # "Reason: message" when it could not be started: StartError is a run that ended (its
    # exit code is 128), any other reason (CreateContainerConfigError) one still to come.
    error: str | None = None
    message: str = ""  # the termination message of the process that ran last
    previous: Termination | None = None  # the run before the last one started
    back_off: float | None = None  # seconds the restart waits, while it waits

    def last_run(self) -> Termination | None:
        """How the process that ran last ended, unless one runs now."""
        if self.pid is not None or self.exit_code is None:
            return None
        reason, _, message = (self.error or "").partition(": ")
        if reason == START_ERROR:
            return Termination(self.exit_code, self.started_at, self.finished_at, message, reason)
        return Termination(self.exit_code, self.started_at, self.finished_at, self.message)

    def waiting_error(self) -> tuple[str, str] | None:
        """(reason, message) of an error that keeps the container from starting."""
        reason, _, message = (self.error or "").partition(": ")
        return (reason, message) if reason and reason != START_ERROR else None


def should_restart(policy: str, code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def container_state(
    c: ContainerSnapshot, restart_policy: str, deadline_exceeded: bool
) -> dict[str, Any]:
    if c.pid is not None:
        return {"running": {"startedAt": c.started_at}}
    error = c.waiting_error()
    if error is not None:
        return {"waiting": {"reason": error[0], "message": error[1]}}
    last = c.last_run()
    if last is None:
        return {"waiting": {"reason": "ContainerCreating"}}
    if should_restart(restart_policy, last.exit_code) and not deadline_exceeded:
        # As the kubelet's: how it ended is in lastState; this says when it starts again.
        if c.back_off is not None:
            message = f"back-off {go_duration(c.back_off)} restarting failed container={c.name}"
            return {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        return {"waiting": {"reason": "ContainerCreating"}}
    return last.state()


def last_state(
    c: ContainerSnapshot, restart_policy: str, deadline_exceeded: bool
) -> dict[str, Any]:
    """The kubelet's lastState: the run that ended last while the container runs or waits
    to be restarted, the run before that once it is terminated for good."""
    last = c.last_run()
    if last is not None and "waiting" in container_state(c, restart_policy, deadline_exceeded):
        return last.state()
    return c.previous.state() if c.previous is not None else {}


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
        "lastState": last_state(c, restart_policy, deadline_exceeded),
    }


def phase_and_reason(
    statuses: Sequence[Mapping[str, Any]], deadline_exceeded: bool, stopped: bool = False
) -> tuple[str, str | None]:
    """The pod phase from its container statuses, and the pod's reason if it has one. A
    `stopped` pod (deleted, its processes gone) is Succeeded if every container exited 0,
    otherwise Failed, as the kubelet leaves a pod before its final delete."""
    if deadline_exceeded:
        return "Failed", "DeadlineExceeded"
    terminal = [s for s in statuses if "terminated" in s["state"]]
    if stopped:
        succeeded = len(terminal) == len(statuses) and all(
            s["state"]["terminated"]["exitCode"] == 0 for s in terminal
        )
        return ("Succeeded" if succeeded else "Failed"), None
    if statuses and len(terminal) == len(statuses):
        failed = any(s["state"]["terminated"]["exitCode"] != 0 for s in terminal)
        return ("Failed" if failed else "Succeeded"), None
    # A container waiting to be restarted keeps the pod Running, as a kubelet's does.
    if any(s["started"] or "terminated" in s["state"] or s["lastState"] for s in statuses):
        return "Running", None
    return "Pending", None


def init_restart_policy(restart_policy: str) -> str:
    """Init containers run to completion: restarted on failure unless the pod says Never."""
    return "Never" if restart_policy == "Never" else "OnFailure"


def init_failed(statuses: Sequence[Mapping[str, Any]], restart_policy: str) -> bool:
    """An init container failed for good: the pod can never start its containers."""
    return restart_policy == "Never" and any(
        s["state"].get("terminated", {}).get("exitCode", 0) != 0 for s in statuses
    )


def initializing_status(status: dict[str, Any]) -> dict[str, Any]:
    """A container that waits for the init containers, as the kubelet reports it."""
    if status["state"] == {"waiting": {"reason": "ContainerCreating"}}:
        return {**status, "state": {"waiting": {"reason": "PodInitializing"}}}
    return status


def pod_status(
    containers: Sequence[ContainerSnapshot],
    *,
    init_containers: Sequence[ContainerSnapshot] = (),
    initialized: bool = True,
    ip: str,
    start_time: str,
    restart_policy: str = "Always",
    deadline_exceeded: bool = False,
    stopped: bool = False,
    qos_class: str = "BestEffort",
    previous: Mapping[str, Any] | None = None,
    now: str,
) -> dict[str, Any]:
    """The pod's status; `stopped`: its final one, once deleted and its processes gone. A
    condition keeps its lastTransitionTime from `previous` (the status published last)
    while its value stays; a changed one gets `now`, so an unchanged pod yields a status
    equal to `previous`."""
    final = deadline_exceeded or stopped
    statuses = [container_status(c, restart_policy, final) for c in containers]
    init_policy = init_restart_policy(restart_policy)
    init_statuses = [container_status(c, init_policy, final) for c in init_containers]
    if initialized:
        phase, reason = phase_and_reason(statuses, deadline_exceeded, stopped)
    else:
        statuses = [initializing_status(s) for s in statuses]
        if deadline_exceeded:
            phase, reason = "Failed", "DeadlineExceeded"
        elif stopped or init_failed(init_statuses, restart_policy):
            phase, reason = "Failed", None
        else:
            phase, reason = "Pending", None
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
            cond("Initialized", initialized),
            cond("ContainersReady", ready),
            cond("Ready", ready),
        ],
        "containerStatuses": statuses,
        "qosClass": qos_class,
    }
    if init_statuses:
        out["initContainerStatuses"] = init_statuses
    if reason:
        out["reason"] = reason
    return out


UNKNOWN_CONTAINER = {
    "exitCode": 137,
    "reason": "ContainerStatusUnknown",
    "message": "The container could not be located when the pod was terminated",
}


def stopped_status(status: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The final status of a deleted pod this runner knows nothing of (a runner before it
    ran it): a terminal phase, its containers terminated (those not known to have ended
    as the kubelet reports a container it cannot find), not ready. Without it, the job
    controller would keep its finalizer on the pod, and the pod its node's resources."""
    if status.get("phase") in ("Succeeded", "Failed"):
        return dict(status)
    containers = []
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" not in state:
            state = {"terminated": {**UNKNOWN_CONTAINER, "finishedAt": now}}
        containers.append({**cs, "state": state, "ready": False, "started": False})
    conditions = [
        {**c, "status": "False", "lastTransitionTime": now}
        if c.get("type") in ("Ready", "ContainersReady") and c.get("status") != "False"
        else c
        for c in status.get("conditions") or []
    ]
    return {**status, "phase": "Failed", "containerStatuses": containers, "conditions": conditions}

"""Process supervision: a local pod and its containers' processes, started with the pod's
command, args and env, probed for readiness, restarted by the pod's restart policy with
a back-off, and killed by process group."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro.localplatform.pods import probes
from maestro.localplatform.pods.env import expand
from maestro.localplatform.pods.status import ContainerSnapshot, restart_delay, should_restart

log = logging.getLogger("pod-runner")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    """One container of a local pod: its spec, its process if one runs, and what the
    status and the restart back-off need of the processes it ran."""

    spec: dict[str, Any]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    restarts: int = 0
    exit_code: int | None = None
    finished_at: str | None = None
    ready: bool = False
    next_start: float = 0.0
    probe_failures: int = 0
    next_probe: float = 0.0
    error: str | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def snapshot(self) -> ContainerSnapshot:
        return ContainerSnapshot(
            name=self.name,
            image=self.spec.get("image", ""),
            pid=self.proc.pid if self.proc is not None else None,
            started_at=self.started_at,
            exit_code=self.exit_code,
            finished_at=self.finished_at,
            ready=self.ready,
            restarts=self.restarts,
            error=self.error,
        )


@dataclass
class LocalPod:
    """A pod this runner runs: its address, work dir, latest object from the server, the
    base env of its containers and the status it published last."""

    namespace: str
    name: str
    uid: str
    ip: str
    workdir: Path
    body: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    start_time: str = field(default_factory=now)
    started_mono: float = field(default_factory=time.monotonic)
    deadline_exceeded: bool = False
    last_status: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# A container's environment; it may read Secrets and ConfigMaps, hence a callback.
EnvResolver = Callable[[LocalPod, dict[str, Any]], dict[str, str]]


class Supervisor:
    """Moves each container of a pod along, one step per tick of the runner's loop."""

    def __init__(self, container_env: EnvResolver) -> None:
        self.container_env = container_env

    def start(self, pod: LocalPod, c: Container) -> None:
        try:
            env = self.container_env(pod, c.spec)
            command = [expand(a, env) for a in (c.spec.get("command") or ["maestro"])]
            args = [expand(a, env) for a in (c.spec.get("args") or [])]
            exe = shutil.which(command[0], path=env["PATH"]) or command[0]
        except Exception as err:
            c.error = f"CreateContainerConfigError: {err}"
            return
        workdir = c.spec.get("workingDir")
        cwd = workdir if workdir and os.path.isdir(workdir) else pod.workdir
        with c.log_path.open("ab") as out:
            try:
                c.proc = subprocess.Popen(
                    [exe, *command[1:], *args],
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as err:
                c.error = f"StartError: {err}"
                c.exit_code, c.finished_at = 128, now()
                return
        c.started_at, c.exit_code, c.finished_at, c.ready, c.error = now(), None, None, False, None
        probe = c.spec.get("readinessProbe") or {}
        c.next_probe = time.monotonic() + float(probe.get("initialDelaySeconds", 0))
        c.probe_failures = 0
        log.info(
            "started %s/%s pid %s: %s", pod.key, c.name, c.proc.pid, [exe, *command[1:], *args]
        )

    def probe(self, pod: LocalPod, c: Container) -> None:
        spec = c.spec.get("readinessProbe")
        if not spec:
            c.ready = True
            return
        if time.monotonic() < c.next_probe:
            return
        # At most a second apart whatever the pod asks, so readiness shows up quickly.
        period = min(float(spec.get("periodSeconds", 10)), 1.0)
        c.next_probe = time.monotonic() + period
        ok = probes.check(spec, c.spec, pod.ip, lambda: self.container_env(pod, c.spec))
        c.ready, c.probe_failures = probes.readiness_after(
            c.ready, c.probe_failures, ok, int(spec.get("failureThreshold", 3))
        )

    def step(self, pod: LocalPod) -> None:
        restart = pod.body["spec"].get("restartPolicy", "Always")
        deadline = pod.body["spec"].get("activeDeadlineSeconds")
        if (
            deadline
            and not pod.deadline_exceeded
            and time.monotonic() - pod.started_mono > deadline
        ):
            pod.deadline_exceeded = True
            for c in pod.containers:
                self.kill(c, grace=0)
        for c in pod.containers:
            if c.error and c.proc is None:
                continue
            if c.proc is None:
                due = time.monotonic() >= c.next_start and not pod.deadline_exceeded
                if due and (c.exit_code is None or should_restart(restart, c.exit_code)):
                    if c.exit_code is not None:
                        c.restarts += 1
                    self.start(pod, c)
                continue
            code = c.proc.poll()
            if code is None:
                self.probe(pod, c)
                continue
            c.proc, c.exit_code, c.finished_at, c.ready = None, code, now(), False
            c.next_start = time.monotonic() + restart_delay(c.restarts)
            log.info("%s/%s exited with %s", pod.key, c.name, code)

    @staticmethod
    def kill(c: Container, grace: float) -> None:
        """SIGTERM to the container's process group, SIGKILL after `grace` seconds; returns
        once the process is reaped."""
        if c.proc is None:
            return
        try:
            os.killpg(c.proc.pid, signal.SIGTERM)
            c.proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGKILL)
        code = c.proc.wait()
        c.proc, c.exit_code, c.finished_at, c.ready = None, code, now(), False

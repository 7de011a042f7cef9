"""Process supervision: a local pod and its containers' processes, started with the pod's
command, args and env, probed for readiness, restarted by the pod's restart policy with
the kubelet's crash-loop back-off, and stopped as the kubelet stops them: SIGTERM to the
process group, SIGKILL once the pod's grace period is over. What is left of a
container's process group when its main process ends dies with it, as the processes of
a container do."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro.localplatform.pods import probes, termination
from maestro.localplatform.pods.env import expand
from maestro.localplatform.pods.lifecycle import (
    BackOff,
    in_back_off,
    pre_stop_sleep,
    restarted,
    stop_times,
    termination_grace,
)
from maestro.localplatform.pods.status import ContainerSnapshot, Termination, should_restart
from maestro.localplatform.pods.volumes import Mount, in_mount_namespace, mounts
from maestro.localplatform.procs import POD_MARKER, POD_PROCESS, PROCESS_MARKER

log = logging.getLogger("pod-runner")

# A container whose env cannot be resolved (a Secret not there yet) is tried again this
# often, as the kubelet retries a pod whose sync failed (its backOffPeriod).
CONFIG_RETRY = 10.0
# Bytes of the end of a container's log (this run's part) read for a FallbackToLogsOnError
# message.
LOG_TAIL = 65536
# Where a container finds its resolver's configuration (the pod's, from pods.dns).
RESOLV_CONF = "/etc/resolv.conf"
# After SIGKILL, how long to wait for a process to be reaped before giving up on it.
REAP_TIMEOUT = 30.0


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A process's exit as a container runtime reports it: 128 + the signal that ended it."""
    return 128 - returncode if returncode < 0 else returncode


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
    finished_mono: float = 0.0
    message: str = ""  # the termination message of the process that ran last
    previous: Termination | None = None
    back_off: BackOff = field(default_factory=BackOff)
    ready: bool = False
    probe_failures: int = 0
    next_probe: float = 0.0
    error: str | None = None
    retry_config_at: float = 0.0
    kill_at: float | None = None  # when SIGKILL follows the SIGTERM it was sent
    log_start: int = 0  # where the running process's output begins in the shared log
    done: bool = False  # an init container that has exited 0: it never runs again

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def termination_log(self) -> Path:
        """The file named by termination.ENV, for want of a mount."""
        return termination.message_file(self.log_path.parent, self.name)

    def snapshot(self, at: float | None = None) -> ContainerSnapshot:
        at = time.monotonic() if at is None else at
        waiting = (
            self.proc is None
            and self.exit_code is not None
            and in_back_off(self.back_off, self.finished_mono, at)
        )
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
            message=self.message,
            previous=self.previous,
            back_off=self.back_off.delay if waiting else None,
        )


@dataclass
class LocalPod:
    """A pod this runner runs: its address, work dir, latest object from the server, the
    base env of its containers and the status it published last. `lock` is held while its
    containers are stepped; once `stopping`, they never are again."""

    namespace: str
    name: str
    uid: str
    ip: str
    workdir: Path
    body: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    init_containers: list[Container] = field(default_factory=list)
    volumes: dict[str, Path] = field(default_factory=dict)  # volumes.make_volumes's
    resolv_conf: Path | None = None  # the file bound over /etc/resolv.conf (pods.dns)
    volumes_made: float = 0.0  # when its projected tokens were issued (monotonic)
    start_time: str = field(default_factory=now)
    started_mono: float = field(default_factory=time.monotonic)
    deadline_exceeded: bool = False
    last_status: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stopping: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def initialized(self) -> bool:
        return all(c.done for c in self.init_containers)

    @property
    def all_containers(self) -> list[Container]:
        return [*self.init_containers, *self.containers]


# A container's environment; it may read Secrets and ConfigMaps, hence a callback.
EnvResolver = Callable[[LocalPod, dict[str, Any]], dict[str, str]]


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _read_head(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def _read_tail(path: Path, start: int, limit: int) -> bytes:
    """At most `limit` bytes of the end of `path`, none before `start`."""
    try:
        with path.open("rb") as f:
            f.seek(max(start, f.seek(0, os.SEEK_END) - limit))
            return f.read()
    except OSError:
        return b""


class Supervisor:
    """Moves each container of a pod along, one step per tick of the runner's loop.
    `platform` is the mark (procs.MARKER) every container's processes carry, so that the
    platform's teardown finds them even once their runner is gone."""

    def __init__(self, container_env: EnvResolver, platform: Mapping[str, str] | None = None):
        self.container_env = container_env
        self.platform = dict(platform or {})
        # Set when the runner shuts down: preStop hooks still waiting are cut short, so
        # every pod being deleted then gets its SIGTERM before the runner exits.
        self.hooks_cut = threading.Event()

    def start(self, pod: LocalPod, c: Container) -> None:
        try:
            env = self.container_env(pod, c.spec)
            command = [expand(a, env) for a in (c.spec.get("command") or ["maestro"])]
            args = [expand(a, env) for a in (c.spec.get("args") or [])]
            exe = shutil.which(command[0], path=env["PATH"]) or command[0]
        except Exception as err:
            c.error = f"CreateContainerConfigError: {err}"
            c.retry_config_at = time.monotonic() + CONFIG_RETRY
            return
        if self.platform:
            env.update({**self.platform, PROCESS_MARKER: POD_PROCESS, POD_MARKER: pod.key})
        env[termination.ENV] = str(c.termination_log)
        workdir = c.spec.get("workingDir")
        cwd = workdir if workdir and os.path.isdir(workdir) else pod.workdir
        if c.exit_code is not None:  # a restart: the run that ended becomes lastState's
            c.previous = c.snapshot().last_run()
            c.restarts += 1
        c.termination_log.write_bytes(b"")
        with c.log_path.open("ab") as out:
            c.log_start = out.tell()
            planned = mounts(c.spec, pod.volumes, keep=pod.workdir.resolve())
            if pod.resolv_conf is not None:
                planned.append(Mount(pod.resolv_conf, RESOLV_CONF, file=True))
            try:
                c.proc = subprocess.Popen(
                    in_mount_namespace([exe, *command[1:], *args], planned),
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as err:
                c.error = f"StartError: {err}"
                c.exit_code, c.finished_at, c.finished_mono = 128, now(), time.monotonic()
                c.started_at, c.message = None, ""
                return
        c.started_at, c.exit_code, c.finished_at, c.ready, c.error = now(), None, None, False, None
        c.message, c.kill_at = "", None
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

    def exited(self, c: Container, returncode: int) -> None:
        """Record the end of the container's process; what it left running in its process
        group is killed."""
        assert c.proc is not None
        _killpg(c.proc.pid, signal.SIGKILL)
        code = exit_code(returncode)
        c.proc, c.exit_code, c.finished_at, c.ready, c.kill_at = None, code, now(), False, None
        c.finished_mono = time.monotonic()
        c.message = termination.termination_message(
            _read_head(c.termination_log, termination.MAX_BYTES),
            _read_tail(c.log_path, c.log_start, LOG_TAIL),
            c.spec.get("terminationMessagePolicy"),
            code,
        )

    def step(self, pod: LocalPod) -> None:
        with pod.lock:
            if not pod.stopping:
                self._step(pod)

    def _step(self, pod: LocalPod) -> None:
        restart = pod.body["spec"].get("restartPolicy", "Always")
        deadline = pod.body["spec"].get("activeDeadlineSeconds")
        if (
            deadline
            and not pod.deadline_exceeded
            and time.monotonic() - pod.started_mono > deadline
        ):
            pod.deadline_exceeded = True
            # As the kubelet does: the pod's grace period, without waiting here for it.
            for c in pod.all_containers:
                self.signal_stop(c, termination_grace(pod.body))
        if not self._step_init(pod, restart):
            return
        for c in pod.containers:
            if c.proc is not None:
                code = c.proc.poll()
                if code is None:
                    if c.kill_at is None:
                        self.probe(pod, c)
                    elif time.monotonic() >= c.kill_at:
                        _killpg(c.proc.pid, signal.SIGKILL)
                    continue
                self.exited(c, code)
                log.info("%s/%s exited with %s", pod.key, c.name, c.exit_code)
            if pod.deadline_exceeded:
                continue
            if c.exit_code is None:  # never started: first start, or a config error
                if c.error is None or time.monotonic() >= c.retry_config_at:
                    self.start(pod, c)
                continue
            at = time.monotonic()
            if should_restart(restart, c.exit_code) and not in_back_off(
                c.back_off, c.finished_mono, at
            ):
                c.back_off = restarted(c.back_off, c.finished_mono, at)
                self.start(pod, c)

    def _step_init(self, pod: LocalPod, restart: str) -> bool:
        """Run the init containers one after the other, each to a clean exit, as the kubelet
        does: a failed one is restarted with the back-off unless the pod's restartPolicy is
        Never. True once all have exited 0 (the other containers may start)."""
        for c in pod.init_containers:
            if c.done:
                continue
            if c.proc is not None:
                code = c.proc.poll()
                if code is None:
                    if c.kill_at is not None and time.monotonic() >= c.kill_at:
                        _killpg(c.proc.pid, signal.SIGKILL)
                    return False
                self.exited(c, code)
                log.info("%s/%s (init) exited with %s", pod.key, c.name, c.exit_code)
            if pod.deadline_exceeded:
                return False
            if c.exit_code == 0:
                c.done = True
                continue
            if c.exit_code is None:
                if c.error is None or time.monotonic() >= c.retry_config_at:
                    self.start(pod, c)
                return False
            at = time.monotonic()
            if restart != "Never" and not in_back_off(c.back_off, c.finished_mono, at):
                c.back_off = restarted(c.back_off, c.finished_mono, at)
                self.start(pod, c)
            return False
        return True

    @staticmethod
    def signal_stop(c: Container, grace: float) -> None:
        """SIGTERM to the container's process group; SIGKILL is due `grace` seconds later."""
        if c.proc is None:
            return
        _killpg(c.proc.pid, signal.SIGTERM)
        due = time.monotonic() + grace
        c.kill_at = due if c.kill_at is None else min(c.kill_at, due)

    def stop(
        self, pods: Iterable[LocalPod], grace: float | None = None, pre_stop: bool = False
    ) -> None:
        """Stop the pods as the kubelet does: their containers are never stepped again;
        SIGTERM to every container's process group (after its preStop sleep hook when
        `pre_stop`, as for a deleted pod), SIGKILL to each one still running after its
        pod's grace period (termination_grace) or `grace` seconds. Returns once every
        process is reaped."""
        waiting = []
        hooked: list[tuple[Container, float, float]] = []
        start = time.monotonic()
        for pod in pods:
            with pod.lock:
                pod.stopping = True
            seconds = termination_grace(pod.body) if grace is None else grace
            for c in pod.all_containers:
                if c.proc is None:
                    continue
                term, kill = stop_times(pre_stop_sleep(c.spec) if pre_stop else 0.0, seconds)
                if term > 0:
                    hooked.append((c, start + term, kill - term))
                else:
                    self.signal_stop(c, seconds)
                waiting.append((pod, c))
        for c, term_at, grace_left in sorted(hooked, key=lambda h: h[1]):
            self.hooks_cut.wait(max(term_at - time.monotonic(), 0))
            self.signal_stop(c, grace_left)
        while waiting:
            left = []
            for pod, c in waiting:
                assert c.proc is not None and c.kill_at is not None
                code = c.proc.poll()
                if code is not None:
                    self.exited(c, code)
                    continue
                late = time.monotonic() - c.kill_at
                if late >= REAP_TIMEOUT:
                    log.warning("%s/%s pid %s survives SIGKILL", pod.key, c.name, c.proc.pid)
                    continue
                if late >= 0:
                    _killpg(c.proc.pid, signal.SIGKILL)
                left.append((pod, c))
            waiting = left
            if waiting:
                time.sleep(0.05)

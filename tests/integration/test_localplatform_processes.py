"""The local pod runner's process supervision with real processes, no cluster: SIGTERM
then SIGKILL after the grace period, a container's left-over processes dying with it,
restarts under the crash-loop back-off, termination messages; and the platform's sweep,
which finds every process carrying its mark wherever it went."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from maestro.localplatform.pods import termination
from maestro.localplatform.pods.processes import Container, LocalPod, Supervisor
from maestro.localplatform.procs import (
    MARKER,
    POD_MARKER,
    POD_PROCESS,
    PROCESS_MARKER,
    ProcessTable,
    marked,
)
from maestro.localplatform.wait import eventually


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


def local_pod(tmp_path: Path, script: str, **spec: Any) -> LocalPod:
    body = {
        "metadata": {"namespace": "ns", "name": "p", "uid": "u"},
        "spec": {"containers": [{"name": "main", "command": ["sh", "-c", script]}], **spec},
    }
    pod = LocalPod("ns", "p", "u", "127.0.0.1", tmp_path, body)
    pod.containers = [Container(c, tmp_path / "main.log") for c in body["spec"]["containers"]]
    return pod


def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(
        lambda pod, c: {"PATH": os.environ["PATH"], "HOME": str(pod.workdir)},
        {MARKER: str(tmp_path / "platform")},
    )


def started(sup: Supervisor, pod: LocalPod, ready_file: str = "") -> int:
    sup.step(pod)
    (c,) = pod.containers
    assert c.proc is not None, c.error
    if ready_file:
        eventually(lambda: (pod.workdir / ready_file).exists(), timeout=10, what=ready_file)
    return c.proc.pid


def test_sigterm_then_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    # Ignores SIGTERM (as its child does), like a server stuck retrying.
    pod = local_pod(tmp_path, "trap '' TERM; sleep 60 & echo $! > child; touch up; wait")
    sup = supervisor(tmp_path)
    started(sup, pod, "up")
    child = int((tmp_path / "child").read_text())
    begun = time.monotonic()
    sup.stop([pod], grace=1.5)
    took = time.monotonic() - begun
    (c,) = pod.containers
    assert 1.5 <= took < 5, took
    assert c.proc is None and c.exit_code == 137  # 128 + SIGKILL
    assert not alive(child)


def test_a_process_that_stops_on_sigterm_is_not_waited_for(tmp_path: Path) -> None:
    pod = local_pod(tmp_path, "touch up; exec sleep 60", terminationGracePeriodSeconds=30)
    sup = supervisor(tmp_path)
    started(sup, pod, "up")
    begun = time.monotonic()
    sup.stop([pod])  # the pod's own grace period: 30 s
    assert time.monotonic() - begun < 5
    assert pod.containers[0].exit_code == 128 + signal.SIGTERM
    sup.step(pod)  # a stopped pod is never restarted
    assert pod.containers[0].proc is None


def test_what_a_container_leaves_running_dies_with_it(tmp_path: Path) -> None:
    pod = local_pod(tmp_path, "sleep 60 & echo $! > child; exit 3", restartPolicy="Never")
    sup = supervisor(tmp_path)
    started(sup, pod)
    (c,) = pod.containers
    assert c.proc is not None
    c.proc.wait()
    sup.step(pod)
    assert c.exit_code == 3
    child = int((tmp_path / "child").read_text())
    eventually(lambda: not alive(child), timeout=5, what="the container's child killed")


def test_a_crash_loop_restarts_at_once_then_backs_off(tmp_path: Path) -> None:
    script = f"echo 'cannot load model' > \"${termination.ENV}\"; exit 1"
    pod = local_pod(tmp_path, script)
    sup = supervisor(tmp_path)
    started(sup, pod)
    (c,) = pod.containers

    def crashed() -> bool:
        assert c.proc is not None
        return c.proc.poll() is not None

    eventually(crashed, timeout=10, what="the first crash")
    sup.step(pod)  # exited, restarted at once
    assert c.restarts == 1 and c.proc is not None
    eventually(crashed, timeout=10, what="the second crash")
    sup.step(pod)  # exited, now backing off 10 s
    assert c.restarts == 1 and c.proc is None
    snap = c.snapshot()
    assert snap.back_off == 10 and snap.message == "cannot load model"
    assert snap.previous is not None and snap.previous.exit_code == 1
    sup.step(pod)
    assert c.proc is None  # still waiting
    c.finished_mono -= 10  # as if 10 s had passed
    sup.step(pod)
    assert c.restarts == 2 and c.proc is not None
    sup.stop([pod], grace=0)


def test_a_container_falls_back_to_its_log_under_fallback_to_logs_on_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "main.log").write_bytes(b"an earlier run's output\n")
    pod = local_pod(tmp_path, "echo first; echo 'no such model'; exit 2", restartPolicy="Never")
    pod.containers[0].spec["terminationMessagePolicy"] = "FallbackToLogsOnError"
    sup = supervisor(tmp_path)
    started(sup, pod)
    (c,) = pod.containers
    assert c.proc is not None
    c.proc.wait()
    sup.step(pod)
    assert c.message == "first\nno such model"  # this run's output only


def test_a_containers_processes_carry_the_platforms_mark(tmp_path: Path) -> None:
    pod = local_pod(tmp_path, "touch up; exec sleep 60")
    sup = supervisor(tmp_path)
    pid = started(sup, pod, "up")
    try:
        (found,) = marked(tmp_path / "platform")
        assert (found.pid, found.process, found.pod) == (pid, POD_PROCESS, "ns/p")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"{PROCESS_MARKER}={POD_PROCESS}".encode() in environ
        assert f"{POD_MARKER}=ns/p".encode() in environ
    finally:
        sup.stop([pod], grace=0)


def test_the_sweep_kills_what_a_platform_started_wherever_it_went(tmp_path: Path) -> None:
    ours = ProcessTable(tmp_path / "ours" / "run", tmp_path / "logs")
    theirs = ProcessTable(tmp_path / "theirs" / "run", tmp_path / "logs")
    # A process that ignores SIGTERM, one that left its process group (setsid) and one of
    # another platform, which must be left alone.
    script = "trap '' TERM; setsid sleep 60 & sleep 60 & wait"
    ours.start("thing", ["sh", "-c", script], cwd=tmp_path)
    theirs.start("thing", ["sleep", "60"], cwd=tmp_path)
    try:
        eventually(lambda: len(marked(ours.platform)) == 3, timeout=10, what="3 processes")
        assert {m.process for m in marked(ours.platform)} == {"thing"}
        begun = time.monotonic()
        ours.stop("thing", timeout=1)
        assert marked(ours.platform) == []
        assert time.monotonic() - begun < 10
        (other,) = marked(theirs.platform)
        assert alive(other.pid)
    finally:
        theirs.stop("thing")
        ours.sweep()
    assert marked(theirs.platform) == []


def test_processes_started_by_the_table_are_marked(tmp_path: Path) -> None:
    table = ProcessTable(tmp_path / "state" / "run", tmp_path / "logs")
    pid = table.start("etcd", ["sleep", "60"], env={"PATH": os.environ["PATH"]})
    try:
        # Between fork and exec the child's environ reads empty: wait for the exec.
        environ = eventually(
            lambda: [e for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e],
            timeout=5,
            what="the started process's environment",
            interval=0.01,
        )
        assert f"{MARKER}={tmp_path / 'state'}".encode() in environ
        assert f"{PROCESS_MARKER}=etcd".encode() in environ
    finally:
        table.stop("etcd")
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0

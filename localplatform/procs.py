"""Background processes that outlive the command that started them (the way a
daemon does), tracked by pid files so `down` can stop them from another process, and
marked so that `down` also finds every process they started.

The mark is in the environment, which every child inherits: MARKER names the platform's
state dir (the folder holding run/), PROCESS_MARKER the process that started it (its
name in the table, or POD_PROCESS for the pod runner's containers). A sweep reads
/proc/<pid>/environ and kills what carries the mark, wherever it ended up: in another
session, orphaned by a runner that died, or forked by a program that retries forever."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from http.server import HTTPServer
from pathlib import Path

MARKER = "MAESTRO_LOCAL_PLATFORM"
PROCESS_MARKER = "MAESTRO_LOCAL_PLATFORM_PROCESS"
POD_MARKER = "MAESTRO_LOCAL_PLATFORM_POD"  # namespace/name, for the pod runner's processes
POD_PROCESS = "pod"


@dataclass(frozen=True)
class Marked:
    """A live process carrying a platform's mark."""

    pid: int
    process: str  # its PROCESS_MARKER
    pod: str  # its POD_MARKER, "" outside pods
    cmdline: str

    def __str__(self) -> str:
        where = f" of pod {self.pod}" if self.pod else ""
        return f"pid {self.pid} ({self.process}{where}): {self.cmdline[:200]}"


def marker_env(platform: Path, process: str, pod: str = "") -> dict[str, str]:
    """The variables that mark a process as `platform`'s."""
    env = {MARKER: str(platform), PROCESS_MARKER: process}
    if pod:
        env[POD_MARKER] = pod
    return env


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def marked(platform: Path, processes: Collection[str] | None = None) -> list[Marked]:
    """The live processes (zombies are dead) whose environment carries `platform`'s mark,
    among `processes` (PROCESS_MARKER values) or all of them; never this process."""
    want = f"{MARKER}={platform}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = _read(f"/proc/{entry}/environ").split(b"\0")
            if want not in environ:
                continue
            stat = _read(f"/proc/{entry}/stat")
            cmdline = _read(f"/proc/{entry}/cmdline")
        except OSError:  # gone meanwhile, or another user's
            continue
        if stat.rsplit(b") ", 1)[-1][:1] in (b"Z", b"X"):
            continue
        env = dict(v.decode(errors="replace").partition("=")[::2] for v in environ if v)
        process = env.get(PROCESS_MARKER, "")
        if processes is not None and process not in processes:
            continue
        args = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        found.append(Marked(int(entry), process, env.get(POD_MARKER, ""), args))
    return found


class ProcessTable:
    """Pid files and logs for the local platform's processes, one folder each. The
    platform, whose mark every process started here carries, is the state dir holding
    `run_dir`."""

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.platform = run_dir.parent.absolute()

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        path = self._pidfile(name)
        try:
            pid = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            return None
        return pid

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Start `argv` detached (own session), marked, unless a live process already has
        `name`."""
        existing = self.pid(name)
        if existing is not None:
            return existing
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**(os.environ if env is None else env), **marker_env(self.platform, name)},
                cwd=cwd,
                start_new_session=True,
            )
        self._pidfile(name).write_text(str(proc.pid))
        return proc.pid

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM to `name`'s process group, SIGKILL after `timeout` seconds; then whatever
        process `name` started that is still alive elsewhere (another session, say)."""
        pid = self.pid(name)
        if pid is not None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.1)
                if not _alive(pid):
                    break
            self._pidfile(name).unlink(missing_ok=True)
        self.sweep((name,))

    def sweep(
        self,
        processes: Collection[str] | None = None,
        grace: float = 2.0,
        timeout: float = 20.0,
    ) -> list[Marked]:
        """Kill every live process marked as this platform's, among `processes` (their
        PROCESS_MARKER) or all: SIGTERM, SIGKILL to those alive `grace` seconds later, again
        until none is found (a dying process may fork). Returns those still alive after
        `timeout` seconds (none, unless one is stuck in the kernel)."""
        deadline = time.monotonic() + timeout
        found = marked(self.platform, processes)
        while found and time.monotonic() < deadline:
            for proc in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGTERM)
            until = min(deadline, time.monotonic() + grace)
            while time.monotonic() < until and any(_alive(p.pid) for p in found):
                time.sleep(0.1)
            for proc in marked(self.platform, processes):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.1)
            found = marked(self.platform, processes)
        return found

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def serve_until_terminated(server: HTTPServer) -> None:
    """Serve until SIGTERM (what the platform's `stop` sends); shutdown() must not run on
    the thread that serves, hence its own."""
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    server.serve_forever()

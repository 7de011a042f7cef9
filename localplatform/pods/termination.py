"""A container's termination message, as the kubelet gives it: the file the program wrote
at the container's terminationMessagePath (at most 4096 bytes) or, with the policy
FallbackToLogsOnError, the tail of its log when that file is empty and it failed.

The kubelet mounts a file at terminationMessagePath; local processes cannot be given a
mount, so the pod runner hands each container a file of its own and names it in the
MAESTRO_TERMINATION_MESSAGE_PATH environment variable (maestro.serving.contract), where the
programs of the project's image write.
"""

from __future__ import annotations

from pathlib import Path

from maestro.serving.contract import TERMINATION_MESSAGE_PATH

ENV = TERMINATION_MESSAGE_PATH
MAX_BYTES = 4096
# The kubelet's fallback: the last 80 lines of the log, at most 2048 bytes.
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


def message_file(workdir: Path, container: str) -> Path:
    return workdir / f"{container}.termination-log"


def read_tail(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except OSError:
        return b""


def termination_message(
    written: bytes, log_tail: bytes, policy: str | None, exit_code: int | None
) -> str:
    """What the container status shows as `terminated.message`. Pure."""
    text = written[:MAX_BYTES].decode(errors="replace").strip()
    if text or policy != "FallbackToLogsOnError" or not exit_code:
        return text
    lines = log_tail.decode(errors="replace").splitlines()[-FALLBACK_LINES:]
    return "\n".join(lines).encode()[-FALLBACK_BYTES:].decode(errors="ignore").strip()


def collect(message_path: Path, log_path: Path, policy: str | None, exit_code: int | None) -> str:
    """Read what a container left behind when its process ended."""
    try:
        written = message_path.read_bytes()[:MAX_BYTES]
    except OSError:
        written = b""
    tail = read_tail(log_path, 64 * 1024) if not written.strip() else b""
    return termination_message(written, tail, policy, exit_code)

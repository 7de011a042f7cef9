"""`maestro operator` as a subprocess of the test (the `start_operator` fixture of
tests/cluster/conftest.py starts them): serving only the test's namespace, so tests running
at the same time in other namespaces never see each other's operator."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MAESTRO = Path(sys.executable).parent / "maestro"


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path
    healthz: str

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(operator: Operator) -> None:
    if operator.process.poll() is None:
        operator.process.terminate()
        try:
            operator.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait()

"""The termination message the pod runner shows for a container that ended, as the
kubelet does."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.localplatform.pods.termination import collect, termination_message

pytestmark = pytest.mark.unit

LOG = b"".join(f"line {i}\n".encode() for i in range(200))


@pytest.mark.parametrize(
    ("written", "policy", "code", "expected"),
    [
        pytest.param(b"cannot load\n", "File", 1, "cannot load", id="written"),
        pytest.param(b"cannot load", "FallbackToLogsOnError", 1, "cannot load", id="file-wins"),
        pytest.param(b"", "File", 1, "", id="nothing-written"),
        pytest.param(b"", "FallbackToLogsOnError", 0, "", id="succeeded-no-fallback"),
        pytest.param(b"x" * 5000, "File", 1, "x" * 4096, id="at-most-4096-bytes"),
    ],
)
def test_termination_message(written: bytes, policy: str, code: int, expected: str) -> None:
    assert termination_message(written, LOG, policy, code) == expected


def test_failed_without_a_message_falls_back_to_the_logs_last_lines() -> None:
    message = termination_message(b"", LOG, "FallbackToLogsOnError", 1)
    lines = message.splitlines()
    assert lines[-1] == "line 199" and len(lines) <= 80
    assert len(message.encode()) <= 2048


def test_collect_reads_the_file_then_the_log(tmp_path: Path) -> None:
    message, log = tmp_path / "server.termination-log", tmp_path / "server.log"
    log.write_bytes(b"starting\nLoadError: no such model\n")
    assert collect(message, log, "FallbackToLogsOnError", 1).endswith("no such model")
    message.write_text("LoadError: models:/iris/9 does not exist")
    assert collect(message, log, "FallbackToLogsOnError", 1) == (
        "LoadError: models:/iris/9 does not exist"
    )

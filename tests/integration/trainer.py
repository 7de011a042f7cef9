"""Running `maestro train` as a TrainingRun pod runs it: the process, its environment and
its one-line JSON result (shared by the integration tests of the trainers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from maestro.training import contract

MAESTRO = Path(sys.executable).parent / "maestro"


def trainer_env(mlflow_url: str, **values: Any) -> dict[str, str]:
    """The process environment the operator would give a trainer pod."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAESTRO_", "MLFLOW_")) and k != contract.WORKER_INDEX
    }
    env[contract.TRACKING_URI] = mlflow_url
    for name, value in values.items():
        env[name] = value if isinstance(value, str) else json.dumps(value)
    return env


def maestro_train(env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAESTRO), "train"], env=env, capture_output=True, text=True, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

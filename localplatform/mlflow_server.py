"""MLflow tracking server and model registry on PostgreSQL, artifacts on local disk,
on 127.0.0.1:5000. `python -m maestro.localplatform.mlflow_server up|down`."""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from maestro.localplatform.procs import ProcessTable

REPO = Path(__file__).resolve().parents[1]


class MlflowError(RuntimeError):
    pass


@dataclass(frozen=True)
class MlflowConfig:
    host: str = "127.0.0.1"
    port: int = int(os.environ.get("MAESTRO_MLFLOW_PORT", "5000"))
    database_uri: str = os.environ.get(
        "MAESTRO_MLFLOW_DB", "postgresql+psycopg2://maestro:maestro@127.0.0.1:5432/mlflow"
    )
    root: Path = REPO / ".maestro"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def processes(self) -> ProcessTable:
        return ProcessTable(self.root / "cluster" / "run", self.root / "logs")


def healthy(cfg: MlflowConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{cfg.url}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def up(cfg: MlflowConfig, timeout: float = 120) -> float:
    started = time.monotonic()
    if healthy(cfg):
        return 0.0
    artifacts = cfg.root / "mlflow" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    procs = cfg.processes()
    procs.start(
        "mlflow",
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            cfg.database_uri,
            "--artifacts-destination",
            artifacts.as_uri(),
            "--serve-artifacts",
            "--host",
            cfg.host,
            "--port",
            str(cfg.port),
            "--workers",
            "1",
        ],
        # Registry webhooks reach the operator at its pod address over plain HTTP on the
        # local platform; MLflow refuses private addresses and http:// by default.
        env={
            **os.environ,
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        },
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(cfg):
            return time.monotonic() - started
        if procs.pid("mlflow") is None:
            break
        time.sleep(0.5)
    raise MlflowError(
        f"MLflow server did not become healthy at {cfg.url} (PostgreSQL running? `make services`); "
        f"its log ends:\n{procs.tail('mlflow')}"
    )


def down(cfg: MlflowConfig) -> None:
    cfg.processes().stop("mlflow")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.mlflow_server", description=__doc__
    )
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    cfg = MlflowConfig()
    try:
        if args.command == "up":
            print(f"MLflow at {cfg.url} (started in {up(cfg):.1f}s)")
        else:
            down(cfg)
    except MlflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

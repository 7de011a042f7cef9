"""MLflow tracking server and model registry on PostgreSQL, on 127.0.0.1:5000, with its
artifacts in the local platform's object store (s3://maestro/mlflow-artifacts, which `up`
starts first). Clients log and load artifacts through the server (mlflow-artifacts:/
URIs, --serve-artifacts) and need no S3 credentials. Runs logged before the artifacts
moved (to .maestro/mlflow/artifacts) keep their URIs, which now resolve in the bucket.
`python -m maestro.localplatform.mlflow_server up|down`."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from maestro.localplatform import objectstore
from maestro.localplatform.clusterconfig import ClusterConfig, ClusterError
from maestro.localplatform.procs import ProcessTable

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = f"s3://{objectstore.BUCKET}/mlflow-artifacts"


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


def webhook_key(cfg: MlflowConfig) -> str:
    """The Fernet key MLflow encrypts webhook secrets with. It must be the same at every
    start against the same database (fresh clones share the machine's PostgreSQL), so it is
    derived from the database URI: a local-platform key for loopback test webhooks, not a
    secret; production sets its own MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY."""
    digest = hashlib.sha256(f"maestro-local-platform:{cfg.database_uri}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def forget_unreadable_webhooks(cfg: MlflowConfig, key: str) -> None:
    """Delete stored webhooks whose secret another key encrypted: MLflow answers 500 to
    every webhook call while one is there."""
    import sqlalchemy as sa
    from cryptography.fernet import Fernet, InvalidToken

    cipher = Fernet(key.encode())
    engine = sa.create_engine(cfg.database_uri)
    try:
        with engine.begin() as db:
            if not sa.inspect(db).has_table("webhooks"):
                return
            rows = db.execute(sa.text("SELECT webhook_id, secret FROM webhooks")).all()
            for webhook_id, secret in rows:
                if secret is None:
                    continue
                try:
                    cipher.decrypt(str(secret).encode())
                except InvalidToken:
                    params = {"id": webhook_id}
                    db.execute(sa.text("DELETE FROM webhook_events WHERE webhook_id = :id"), params)
                    db.execute(sa.text("DELETE FROM webhooks WHERE webhook_id = :id"), params)
    except sa.exc.OperationalError as err:
        raise MlflowError(f"PostgreSQL unreachable (`make services`): {err}") from err
    finally:
        engine.dispose()


def up(cfg: MlflowConfig, timeout: float = 120) -> float:
    """Start the object store (unless it runs), then MLflow (unless it runs)."""
    started = time.monotonic()
    try:
        store = objectstore.up(ClusterConfig(root=cfg.root))
    except ClusterError as err:
        raise MlflowError(f"MLflow keeps its artifacts in the object store: {err}") from err
    if healthy(cfg):
        return 0.0
    key = webhook_key(cfg)
    forget_unreadable_webhooks(cfg, key)
    procs = cfg.processes()
    procs.start(
        "mlflow",
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            cfg.database_uri,
            "--artifacts-destination",
            ARTIFACTS,
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
            # The object store's endpoint and credentials (boto3 reads AWS_*; MLflow's S3
            # artifact repository also reads MLFLOW_S3_ENDPOINT_URL).
            **store.env(),
            "MLFLOW_S3_ENDPOINT_URL": store.endpoint,
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            # Webhook secrets are stored encrypted: one key for every start, or the
            # webhooks an earlier server stored cannot be read (the API answers 500).
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key,
            # MLflow caches which webhooks an event has for a minute; an operator that has
            # just registered its webhook would miss the events of that minute.
            "MLFLOW_WEBHOOK_CACHE_TTL": "1",
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

"""The object store on the local platform: SeaweedFS (built by `make seaweedfs`) on
loopback, standing for whatever S3 a production cluster has (MinIO, AWS S3): workloads
only see the S3 API at `endpoint`. Data lives under the platform's state dir; two
processes run it: `weed server` the master, the filer and the S3 gateway, `weed volume`
the volume server, stopped after them. (In one process, SIGTERM stops the volume server
before the filer, whose last flush then waits 15 s for volumes.)

Authentication is on: one identity whose access key and secret are generated at the
first start and kept in the state dir (owner-only, git-ignored, never printed), allowed
Admin, Read, Write, List and Tagging; anonymous requests are refused. The bucket `maestro`
is created at every start (idempotent). Workloads get the endpoint and credentials from
the Secret `maestro-objectstore` (AWS_* keys: see `env`), which the platform applies into
`default`, the operator's namespace and the demo's.

MLflow keeps its artifacts here, so `mlflow_server.up` starts the store first; the
cluster starts it too (its pods read the Secret) and its `down` stops it. It keeps its
data across restarts, as MLflow's database keeps the runs whose artifacts it holds."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from maestro.localplatform.clusterconfig import ClusterConfig, ClusterError
from maestro.localplatform.kubectl import apply_manifests
from maestro.storage.objectstore import (
    SECRET_NAME,
    ObjectStore,
    ObjectStoreUnavailable,
)

PROCESS = "objectstore"
VOLUME_PROCESS = "objectstore-volume"
BUCKET = "maestro"
REGION = "us-east-1"
IDENTITY = "maestro"
ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")
# Small volumes, grown on demand and never preallocated: the store holds test data.
VOLUME_SIZE_LIMIT_MB = 64
MAX_VOLUMES = 64
# SeaweedFS's convention: each server's gRPC port is its HTTP port + 10000.
GRPC_OFFSET = 10000
# What `up` writes (and deletes) to know that writes work.
READY_PROBE = f"s3://{BUCKET}/.objectstore-ready"


@dataclass(frozen=True)
class LocalObjectStore:
    """Where the platform's object store listens and keeps its files and credentials."""

    cfg: ClusterConfig

    @property
    def dir(self) -> Path:
        return self.cfg.state / "objectstore"

    @property
    def meta_dir(self) -> Path:
        """The master's state and the filer's metadata (LevelDB)."""
        return self.dir / "meta"

    @property
    def volume_dir(self) -> Path:
        return self.dir / "volumes"

    @property
    def credentials_file(self) -> Path:
        return self.dir / "credentials.json"

    @property
    def s3_config_file(self) -> Path:
        return self.dir / "s3.json"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.cfg.s3_port}"

    def credentials(self) -> tuple[str, str]:
        """(access key, secret key); ClusterError before the first start made them."""
        try:
            stored = json.loads(self.credentials_file.read_text())
        except FileNotFoundError:
            raise ClusterError(
                f"no object store credentials in {self.credentials_file}: start the store "
                "first (python -m maestro.localplatform.objectstore up)"
            ) from None
        return str(stored["access_key"]), str(stored["secret_key"])

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (boto3, maestro.storage, MLflow)
        at the store: what the Secret `maestro-objectstore` holds."""
        access_key, secret_key = self.credentials()
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": REGION,
        }

    def client(self) -> ObjectStore:
        return ObjectStore.from_env(self.env())

    def ensure_secret(self, namespace: str, name: str = SECRET_NAME) -> None:
        """Apply the Secret `name` with `env()` as its string data into `namespace`
        (server-side, as the platform's field manager)."""
        apply_manifests(self.cfg, json.dumps(secret_manifest(self.env(), namespace, name)))


def secret_manifest(
    env: dict[str, str], namespace: str, name: str = SECRET_NAME
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "maestro",
                "app.kubernetes.io/component": "objectstore",
                "app.kubernetes.io/part-of": "maestro-ml",
            },
        },
        "type": "Opaque",
        "stringData": dict(env),
    }


def s3_identities(access_key: str, secret_key: str) -> dict[str, object]:
    """SeaweedFS's -s3.config: one identity; without an `anonymous` one, requests that
    are not signed are refused."""
    return {
        "identities": [
            {
                "name": IDENTITY,
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": list(ACTIONS),
            }
        ]
    }


def server_argv(store: LocalObjectStore) -> list[str]:
    """The master, the filer and the S3 gateway."""
    cfg = store.cfg
    return [
        str(cfg.bin / "weed"),
        "-logtostderr=true",
        "-v=0",
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={store.meta_dir}",
        f"-master.port={cfg.objectstore_master_port}",
        f"-master.port.grpc={cfg.objectstore_master_port + GRPC_OFFSET}",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        "-master.volumePreallocate=false",
        "-master.defaultReplication=000",
        "-master.telemetry=false",
        # A single master: resuming its Raft state means waiting out an election (about
        # 12 s); the topology comes back from the volume server's heartbeats anyway.
        "-master.resumeState=false",
        "-volume=false",
        "-filer",
        f"-filer.port={cfg.objectstore_filer_port}",
        f"-filer.port.grpc={cfg.objectstore_filer_port + GRPC_OFFSET}",
        f"-filer.localSocket={store.dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={cfg.s3_port}",
        f"-s3.port.grpc={cfg.s3_port + GRPC_OFFSET}",
        f"-s3.config={store.s3_config_file}",
        f"-s3.localSocket={store.dir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.iam=false",
    ]


def volume_argv(store: LocalObjectStore) -> list[str]:
    cfg = store.cfg
    return [
        str(cfg.bin / "weed"),
        "-logtostderr=true",
        "-v=0",
        "volume",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-port={cfg.objectstore_volume_port}",
        f"-port.grpc={cfg.objectstore_volume_port + GRPC_OFFSET}",
        f"-master=127.0.0.1:{cfg.objectstore_master_port}",
        f"-dir={store.volume_dir}",
        f"-max={MAX_VOLUMES}",
        # Without it, SIGTERM waits 10 s for the master to notice the volume server leave.
        "-preStopSeconds=0",
    ]


def _write_private(path: Path, text: str) -> None:
    """Owner-only from the start: the secret key is never readable by others."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def ensure_credentials(store: LocalObjectStore) -> tuple[str, str]:
    """The identity's keys, generated at the first start and kept after."""
    store.dir.mkdir(parents=True, exist_ok=True)
    if not store.credentials_file.exists():
        keys = {"access_key": secrets.token_hex(10), "secret_key": secrets.token_hex(20)}
        _write_private(store.credentials_file, json.dumps(keys))
    access_key, secret_key = store.credentials()
    _write_private(store.s3_config_file, json.dumps(s3_identities(access_key, secret_key)))
    return access_key, secret_key


def _healthy(store: LocalObjectStore) -> bool:
    try:
        with urllib.request.urlopen(f"{store.endpoint}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def forget_max_volume_id(store: LocalObjectStore) -> None:
    """Zero the volume-id high-water mark the master keeps on disk (its topology id stays).
    Finding one above zero, a master holds every write back for three heartbeat periods
    (15 s) after it starts, waiting for volume servers that may know of higher ids; here
    the one volume server reports all its volumes in its first heartbeat. An unknown
    file format is left alone (writes then wait out that window)."""
    path = store.meta_dir / f"m{store.cfg.objectstore_master_port}" / "max_volume_id"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and isinstance(state.get("maxVolumeId"), int):
        path.write_text(json.dumps({**state, "maxVolumeId": 0}))


def start(store: LocalObjectStore) -> None:
    """Start both processes unless they run; returns at once (`up` waits for them)."""
    weed = store.cfg.bin / "weed"
    if not weed.is_file():
        raise ClusterError(f"missing {weed}: build it with `make seaweedfs` (see README)")
    ensure_credentials(store)
    store.meta_dir.mkdir(parents=True, exist_ok=True)
    store.volume_dir.mkdir(parents=True, exist_ok=True)
    procs = store.cfg.processes()
    if procs.pid(PROCESS) is None:
        forget_max_volume_id(store)
    # Their working dir is their own: SeaweedFS looks for filer.toml and security.toml in
    # "." (none there: the filer keeps its metadata in LevelDB under -dir).
    procs.start(PROCESS, server_argv(store), cwd=store.dir)
    procs.start(VOLUME_PROCESS, volume_argv(store), cwd=store.dir)


def up(cfg: ClusterConfig, timeout: float = 60) -> LocalObjectStore:
    """Start the store (unless it runs), create the bucket and return once an object can
    be written: the S3 gateway answers before the filer has joined the cluster and the
    master has a writable volume (the very first start grows them: about 10 s)."""
    store = LocalObjectStore(cfg)
    start(store)
    procs = cfg.processes()
    client = store.client()
    deadline = time.monotonic() + timeout
    while True:
        problem = ""
        if _healthy(store):
            try:
                client.ensure_bucket(BUCKET)
                client.put_bytes(READY_PROBE, b"")
                client.delete(READY_PROBE)
                return store
            except ObjectStoreUnavailable as err:
                problem = str(err)
        for name in (PROCESS, VOLUME_PROCESS):
            if procs.pid(name) is None:
                raise ClusterError(
                    f"the object store (SeaweedFS, {name}) exited during start-up; its log "
                    f"ends:\n{procs.tail(name)}"
                )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"the object store (SeaweedFS) not ready after {timeout:.0f}s {problem}; "
                f"its logs end:\n{procs.tail(PROCESS)}\n{procs.tail(VOLUME_PROCESS)}"
            )
        time.sleep(0.2)


def down(cfg: ClusterConfig) -> None:
    """The filer flushes to the volume server as it stops: that one last."""
    procs = cfg.processes()
    procs.stop(PROCESS)
    procs.stop(VOLUME_PROCESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.objectstore",
        description="Start or stop the local platform's object store (SeaweedFS, S3 API).",
    )
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    cfg = ClusterConfig()
    try:
        if args.command == "up":
            started = time.monotonic()
            store = up(cfg)
            print(f"object store (S3) at {store.endpoint} in {time.monotonic() - started:.1f}s")
        else:
            down(cfg)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

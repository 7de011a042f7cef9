"""maestro.storage against the local platform's real object store (SeaweedFS, built by
`make seaweedfs`), started here on ports of its own under a temporary root, so that it
runs beside a platform that is up: objects in and out, listings, and refusals of wrong
and missing credentials."""

from __future__ import annotations

import gzip
import random
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from maestro.localplatform import objectstore
from maestro.localplatform.clusterconfig import REPO, ClusterConfig, ClusterError
from maestro.storage.objectstore import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreUnavailable,
)
from maestro.training.data import load_frame
from maestro.training.errors import TrainingError

pytestmark = pytest.mark.services

WEED = REPO / ".maestro" / "bin" / "weed"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """Free ports whose gRPC companions (+10000) are free too."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 29999)
        if port not in chosen and _free(port) and _free(port + objectstore.GRPC_OFFSET):
            chosen.append(port)
    return chosen


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[objectstore.LocalObjectStore]:
    if not WEED.is_file():
        pytest.fail(f"{WEED} is missing: build it with `make seaweedfs`", pytrace=False)
    root = tmp_path_factory.mktemp("objectstore")
    (root / "bin").mkdir()
    (root / "bin" / "weed").symlink_to(WEED)
    s3, master, volume, filer = _ports(4)
    cfg = ClusterConfig(
        root=root,
        s3_port=s3,
        objectstore_master_port=master,
        objectstore_volume_port=volume,
        objectstore_filer_port=filer,
    )
    try:
        started = objectstore.up(cfg)
    except ClusterError as err:
        objectstore.down(cfg)
        pytest.fail(str(err), pytrace=False)
    try:
        yield started
    finally:
        objectstore.down(cfg)
        assert not cfg.processes().sweep(), "object store processes outlived `down`"


@pytest.fixture
def prefix() -> str:
    return f"s3://{objectstore.BUCKET}/test-{uuid.uuid4().hex[:8]}/"


def test_put_get_list_exists_delete(
    store: objectstore.LocalObjectStore, prefix: str, tmp_path: Path
) -> None:
    client = ObjectStore.from_env(store.env())
    client.put_bytes(f"{prefix}a.txt", b"alpha", content_type="text/plain")
    source = tmp_path / "b.bin"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    client.upload_file(source, f"{prefix}sub/b.bin")

    assert client.get_bytes(f"{prefix}a.txt") == b"alpha"
    assert client.exists(f"{prefix}a.txt")
    assert not client.exists(f"{prefix}missing")
    listed = client.list(prefix)
    assert [(o.uri, o.size) for o in listed] == [
        (f"{prefix}a.txt", 5),
        (f"{prefix}sub/b.bin", 1 << 20),
    ]
    assert all(o.etag and o.last_modified for o in listed)
    target = tmp_path / "down" / "b.bin"
    client.download_file(f"{prefix}sub/b.bin", target)
    assert target.read_bytes() == source.read_bytes()

    client.delete(f"{prefix}a.txt")
    client.delete(f"{prefix}a.txt")  # a missing key: no error, as in S3
    assert not client.exists(f"{prefix}a.txt")
    assert [o.uri for o in client.list(prefix)] == [f"{prefix}sub/b.bin"]


def test_missing_objects_and_buckets_are_not_found(
    store: objectstore.LocalObjectStore, prefix: str, tmp_path: Path
) -> None:
    client = ObjectStore.from_env(store.env())
    with pytest.raises(ObjectNotFound, match=f"{prefix}nothing-here"):
        client.get_bytes(f"{prefix}nothing-here")
    with pytest.raises(ObjectNotFound, match="no such object"):
        client.download_file(f"{prefix}nothing-here", tmp_path / "x")
    with pytest.raises(ObjectNotFound, match="no such bucket"):
        client.get_bytes("s3://no-such-bucket-here/k")
    with pytest.raises(ObjectNotFound, match="no such bucket"):
        client.list("s3://no-such-bucket-here/")
    assert client.list(f"{prefix}empty/") == []


@pytest.mark.parametrize(
    "change",
    [
        {"AWS_SECRET_ACCESS_KEY": "wrong"},  # pragma: allowlist secret
        {"AWS_ACCESS_KEY_ID": "nobody"},
    ],
    ids=["wrong-secret", "unknown-key"],
)
def test_wrong_credentials_are_refused(
    store: objectstore.LocalObjectStore, prefix: str, change: dict[str, str]
) -> None:
    ObjectStore.from_env(store.env()).put_bytes(f"{prefix}kept", b"x")
    intruder = ObjectStore.from_env({**store.env(), **change})
    with pytest.raises(ObjectStoreUnavailable, match="refused access"):
        intruder.get_bytes(f"{prefix}kept")
    with pytest.raises(ObjectStoreUnavailable, match="refused access"):
        intruder.put_bytes(f"{prefix}planted", b"x")
    with pytest.raises(ObjectStoreUnavailable, match="refused access"):
        intruder.list(prefix)


def test_anonymous_requests_are_refused(store: objectstore.LocalObjectStore, prefix: str) -> None:
    ObjectStore.from_env(store.env()).put_bytes(f"{prefix}kept", b"x")
    key = f"{prefix}kept".removeprefix("s3://")
    for method, path, body in [
        ("GET", f"/{key}", None),
        ("GET", f"/{objectstore.BUCKET}?list-type=2", None),
        ("PUT", f"/{key}-anonymous", b"x"),
        ("GET", "/", None),
    ]:
        request = urllib.request.Request(f"{store.endpoint}{path}", data=body, method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 403, f"{method} {path}"


def test_credentials_are_owner_only_and_kept_across_restarts(
    store: objectstore.LocalObjectStore,
) -> None:
    for path in (store.credentials_file, store.s3_config_file):
        assert path.stat().st_mode & 0o077 == 0, path
    before = store.credentials()
    objectstore.ensure_credentials(store)
    assert store.credentials() == before


def test_training_reads_s3_datasets(
    store: objectstore.LocalObjectStore, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """training.data.load_frame: one parquet or CSV object, or a prefix of parquet parts."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "target": [0, 1, 0, 1]})
    client = ObjectStore.from_env(store.env())
    for name, data in [
        ("one.parquet", frame.to_parquet()),
        ("one.csv", frame.to_csv(index=False).encode()),
        ("one.csv.gz", gzip.compress(frame.to_csv(index=False).encode())),
        ("parts/a.parquet", frame.iloc[:2].to_parquet()),
        ("parts/b.parquet", frame.iloc[2:].to_parquet()),
    ]:
        client.put_bytes(f"{prefix}{name}", data)
    for key, value in store.env().items():
        monkeypatch.setenv(key, value)

    for name in ("one.parquet", "one.csv", "one.csv.gz", "parts", "parts/"):
        pd.testing.assert_frame_equal(load_frame(f"{prefix}{name}"), frame, check_dtype=False)
    with pytest.raises(TrainingError, match=r"dataset not found: .*missing\.parquet"):
        load_frame(f"{prefix}missing.parquet")
    with pytest.raises(TrainingError, match="no parquet objects under"):
        load_frame(f"{prefix}nothing")


def test_a_serving_pod_ships_its_whole_prediction_log_on_a_graceful_stop(
    store: objectstore.LocalObjectStore, prefix: str, tmp_path: Path
) -> None:
    """`maestro serve` with a shipping interval far longer than the test: every logged row
    reaches the store only because SIGTERM ships what waits."""
    import io
    import os
    import signal
    import subprocess

    import httpx
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from maestro.localplatform.wait import eventually
    from maestro.serving import predlog_layout as layout

    data = load_iris(as_frame=True)
    model_dir = tmp_path / "model"
    mlflow.sklearn.save_model(
        LogisticRegression(max_iter=300).fit(data.data, data.target),
        str(model_dir),
        signature=infer_signature(data.data, data.target),
    )
    (port,) = _ports(1)
    root = layout.deployment_root(prefix.rstrip("/"), "ns", "iris")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "AWS_"))}
    env.update(
        store.env(),
        MAESTRO_DEPLOYMENT="iris",
        MAESTRO_REVISION="v1",
        MAESTRO_SERVE_PREDICTION_LOG_URI=root,
        MAESTRO_SERVE_PREDICTION_LOG_FLUSH_SECONDS="3600",
        POD_NAME="iris-v1-test",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "maestro"), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--grpc-port", "0", "--model-uri", model_dir.as_uri()],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout=120, what="maestro serve ready")
        rows = data.data.head(10).to_dict(orient="records")
        for _ in range(10):
            rsp = httpx.post(f"{url}/invocations", json={"dataframe_records": rows}, timeout=10)
            assert rsp.status_code == 200, rsp.text
        client = ObjectStore.from_env(store.env())
        assert client.list(root) == []  # nothing shipped yet: the interval is an hour
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    shipped = client.list(f"{root}/kind={layout.PREDICTIONS}/")
    assert shipped and all("/revision=v1/hour=" in o.uri for o in shipped)
    frame = pd.concat(pd.read_parquet(io.BytesIO(client.get_bytes(o.uri))) for o in shipped)
    assert len(frame) == 100
    assert sorted(c for c in frame.columns if layout.is_feature(c)) == sorted(data.data.columns)


def _drift_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(env)
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "maestro"), "drift", "check", "--output", "json", *args],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_drift_check_caches_reference_statistics_beside_an_s3_reference(
    store: objectstore.LocalObjectStore, prefix: str, tmp_path: Path
) -> None:
    import json

    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).data
    reference = f"{prefix}iris.parquet"
    client = ObjectStore.from_env(store.env())
    client.put_bytes(reference, iris.to_parquet())
    current = tmp_path / "current.parquet"
    shifted = iris.sample(400, replace=True, random_state=3).reset_index(drop=True)
    shifted["petal width (cm)"] += 3.0
    shifted.to_parquet(current)

    first = _drift_check(store.env(), "--reference", reference, "--current", str(current))
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert [c["name"] for c in result["columns"] if c["drifted"]] == ["petal width (cm)"]
    cached = client.list(f"{reference}.maestro-refstats/")
    assert cached, client.list(prefix)
    assert "computing reference statistics" in first.stderr
    # A later run reads only the cached statistics, and finds the same.
    second = _drift_check(store.env(), "--reference", reference, "--current", str(current))
    assert second.returncode == 0, second.stderr
    assert "computing reference statistics" not in second.stderr, second.stderr
    assert json.loads(second.stdout)["columns"] == result["columns"]
    # A reference that is not there is bad input; a store that cannot be reached is not.
    missing = _drift_check(store.env(), "--reference", f"{prefix}nope.parquet",
                           "--current", str(current))  # fmt: skip
    assert missing.returncode == 2 and "ReferenceUnreadable" in missing.stderr
    (closed,) = _ports(1)
    away = {**store.env(), "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{closed}"}
    unreachable = _drift_check(away, "--reference", reference, "--current", str(current))
    assert unreachable.returncode == 3, unreachable.stderr
    assert json.loads(unreachable.stdout)["reason"] == "ServiceUnavailable"


def test_folders_list_one_level(store: objectstore.LocalObjectStore, prefix: str) -> None:
    client = ObjectStore.from_env(store.env())
    for key in ("kind=a/revision=v1/hour=1/x", "kind=a/revision=v2/hour=1/y", "kind=a/z"):
        client.put_bytes(f"{prefix}{key}", b"1")
    assert client.folders(f"{prefix}kind=a/") == [
        f"{prefix}kind=a/revision=v1/",
        f"{prefix}kind=a/revision=v2/",
    ]
    assert client.folders(f"{prefix}nothing/") == []

"""maestro.storage against the local platform's real object store (SeaweedFS, built by
`make seaweedfs`), started here on ports of its own under a temporary root, so that it
runs beside a platform that is up: objects in and out, listings, and refusals of wrong
and missing credentials."""

from __future__ import annotations

import gzip
import random
import socket
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

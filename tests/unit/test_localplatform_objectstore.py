"""The local object store's pure pieces: its S3 identities, its command lines and the
Secret that hands workloads the AWS_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.localplatform.clusterconfig import ClusterConfig
from maestro.localplatform.objectstore import (
    ACTIONS,
    LocalObjectStore,
    s3_identities,
    secret_manifest,
    server_argv,
    volume_argv,
)
from maestro.storage.objectstore import SECRET_NAME

pytestmark = pytest.mark.unit


def test_one_identity_and_no_anonymous_one() -> None:
    config = s3_identities("AK", "SK")
    (identity,) = config["identities"]  # type: ignore[misc]
    keys = {"accessKey": "AK", "secretKey": "SK"}  # pragma: allowlist secret
    assert identity["credentials"] == [keys]
    assert identity["actions"] == ["Admin", "Read", "Write", "List", "Tagging"] == list(ACTIONS)
    assert identity["name"] != "anonymous"


def test_secret_holds_exactly_the_env_as_string_data() -> None:
    env = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:8333", "AWS_ACCESS_KEY_ID": "a"}
    secret = secret_manifest(env, "ns")
    assert secret["metadata"]["name"] == SECRET_NAME == "maestro-objectstore"  # type: ignore[index]
    assert secret["metadata"]["namespace"] == "ns"  # type: ignore[index]
    assert secret["stringData"] == env
    assert "data" not in secret


def test_processes_listen_on_loopback_at_the_configured_ports(tmp_path: Path) -> None:
    cfg = ClusterConfig(root=tmp_path)
    store = LocalObjectStore(cfg)
    server = server_argv(store)
    volume = volume_argv(store)
    assert f"-s3.port={cfg.s3_port}" in server
    assert f"-s3.config={store.s3_config_file}" in server
    assert "-master.telemetry=false" in server
    assert "-volume=false" in server
    assert f"-master=127.0.0.1:{cfg.objectstore_master_port}" in volume
    for argv in (server, volume):
        assert "-ip.bind=127.0.0.1" in argv
        assert all(str(tmp_path) in a for a in argv if a.startswith(("-dir=", "-s3.config=")))
    assert store.endpoint == f"http://127.0.0.1:{cfg.s3_port}"

"""The pod runner's volumes: which ones it makes (emptyDir, projected), the files of a
projected one, each container's mounts and the mount namespace its command starts in."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from maestro.localplatform.pods.volumes import (
    API_TOKEN_DIR,
    Mount,
    in_mount_namespace,
    make_volumes,
    mounts,
    projected_files,
    volume_dirs,
)

pytestmark = pytest.mark.unit

TOKEN_VOLUME = {
    "name": "vault-token",
    "projected": {
        "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}]
    },
}
API_ACCESS = {
    "name": "kube-api-access-x1",
    "projected": {
        "sources": [
            {"serviceAccountToken": {"path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ]
    },
}


def pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "vault-secrets", "emptyDir": {"medium": "Memory"}},
                TOKEN_VOLUME,
                API_ACCESS,
                {"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
            ],
            "containers": [
                {
                    "name": "server",
                    "volumeMounts": [
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "vault-secrets", "mountPath": "/vault/secrets"},
                        {"name": "data", "mountPath": "/data"},
                        {"name": "kube-api-access-x1", "mountPath": API_TOKEN_DIR},
                    ],
                }
            ],
        },
    }


def test_empty_dirs_and_projected_volumes_are_made_but_not_the_api_token(tmp_path: Path) -> None:
    dirs = volume_dirs(pod()["spec"], tmp_path)
    assert sorted(dirs) == ["tmp", "vault-secrets", "vault-token"]
    assert dirs["tmp"] == tmp_path / "volumes" / "tmp"


def test_a_projected_volume_holds_its_token_config_map_keys_and_namespace() -> None:
    asked: list[tuple[list[str], int]] = []

    def token(audiences: list[str], seconds: int) -> str:
        asked.append((audiences, seconds))
        return "jwt"

    files = projected_files(pod(), API_ACCESS, token, lambda name: {"ca.crt": f"{name} pem"})
    assert files == {"token": "jwt", "ca.crt": "kube-root-ca.crt pem", "namespace": "ns"}
    assert asked == [([], 3600)]


def test_make_volumes_writes_the_token_where_the_agent_reads_it(tmp_path: Path) -> None:
    dirs = make_volumes(pod(), tmp_path, lambda aud, seconds: f"jwt-{seconds}", dict)
    assert (dirs["vault-token"] / "token").read_text() == "jwt-600"
    assert (dirs["vault-token"] / "token").stat().st_mode & 0o777 == 0o600
    assert dirs["tmp"].is_dir()


def test_a_container_mounts_only_what_the_runner_made(tmp_path: Path) -> None:
    spec = pod()["spec"]
    planned = mounts(spec["containers"][0], volume_dirs(spec, tmp_path))
    assert [m.target for m in planned] == ["/tmp", "/vault/secrets"]


def test_without_mounts_the_command_is_unchanged() -> None:
    assert in_mount_namespace(["maestro", "serve"], []) == ["maestro", "serve"]


def test_the_command_runs_with_its_volumes_bound_and_the_host_untouched(tmp_path: Path) -> None:
    """Root only (the local platform's pod runner runs as root): a real mount namespace."""
    source = tmp_path / "volume"
    source.mkdir()
    (source / "value").write_text("inside")
    target = tmp_path / "seen-at"
    argv = in_mount_namespace(["cat", str(target / "value")], [Mount(source, str(target))])
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert out.stdout == "inside"
    # The bind lived in the child's namespace only.
    assert not (target / "value").exists()


def test_a_mount_that_would_hide_the_pod_work_dir_is_left_out(tmp_path: Path) -> None:
    spec = pod()["spec"]
    workdir = Path("/tmp/platform/pods/ns_p_1")
    planned = mounts(spec["containers"][0], volume_dirs(spec, tmp_path), keep=workdir)
    assert [m.target for m in planned] == ["/vault/secrets"]


def test_a_file_is_bound_over_a_file_in_the_container_only(tmp_path: Path) -> None:
    """Root only: the pod's resolv.conf over the host's, as pods.dns writes it."""
    mine = tmp_path / "resolv.conf"
    mine.write_text("nameserver 10.96.0.10\n")
    host = tmp_path / "etc-resolv.conf"
    host.write_text("nameserver 192.0.2.1\n")
    argv = in_mount_namespace(["cat", str(host)], [Mount(mine, str(host), file=True)])
    assert "mkdir" not in argv[6]  # a file target is never made a folder
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert out.stdout == "nameserver 10.96.0.10\n"
    assert host.read_text() == "nameserver 192.0.2.1\n"

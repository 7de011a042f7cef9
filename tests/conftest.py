"""Session fixtures for the real local platform. A component that is missing is a
failure that says how to get it, never a skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from kubernetes import client, config

from maestro.localplatform import cluster as local_cluster
from maestro.localplatform import mlflow_server, objectstore, platform, prometheus
from tests.feast_repo import Repo, created_repo, redis_unavailable

REPO = Path(__file__).resolve().parents[1]


# Reads what the whole session did through the API server's audit log: runs last.
LAST = "test_least_privilege.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == LAST)


@pytest.fixture(scope="session")
def session_started() -> float:
    """When this test session began (what it did is read back from logs after it)."""
    return SESSION_STARTED


SESSION_STARTED = time.time()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        help="run cluster tests against this cluster instead of starting the local control plane",
    )


@dataclass
class Cluster:
    """A handle on the cluster under test: the real kubectl and a Python client."""

    kubeconfig: Path
    kubectl_bin: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return local_cluster.run_kubectl(
            self.kubectl_bin,
            self.kubeconfig,
            *args,
            input=input,
            check=check,
            error=AssertionError,
        )

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(str(self.kubeconfig))


@pytest.fixture(scope="session")
def kubectl_bin(request: pytest.FixtureRequest) -> Path:
    """The kubectl of `make binaries`; against another cluster (--kubeconfig), the one on
    PATH will do when that is not built."""
    path = local_cluster.ClusterConfig().bin / "kubectl"
    if path.is_file():
        return path
    on_path = shutil.which("kubectl")
    if request.config.getoption("--kubeconfig") and on_path:
        return Path(on_path)
    pytest.fail(f"{path} is missing: build it with `make binaries`", pytrace=False)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, kubectl_bin: Path) -> Iterator[Cluster]:
    """The local control plane (started here unless already up), with our CRDs applied."""
    external = request.config.getoption("--kubeconfig")
    if external:
        yield Cluster(Path(external), kubectl_bin)
        return
    cfg = local_cluster.ClusterConfig()
    started_here = not local_cluster.is_up(cfg)
    try:
        if started_here:
            local_cluster.up(cfg)
        else:
            local_cluster.install_crds(cfg)
    except local_cluster.ClusterError as err:
        pytest.fail(f"local control plane unavailable: {err}", pytrace=False)
    yield Cluster(cfg.kubeconfig, kubectl_bin)
    if started_here and not os.environ.get("MAESTRO_KEEP_CLUSTER"):
        local_cluster.down(cfg)


# What the namespaces Maestro serves into carry on the local platform (as in production):
# the API server refuses any pod that breaks the restricted Pod Security profile.
RESTRICTED = (
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
)


def _own_namespace(cluster: Cluster, *labels: str) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    try:
        if labels:
            cluster.kubectl("label", "namespace", name, *labels)
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace of its own for one test, enforcing the restricted Pod Security profile,
    deleted afterwards whatever the outcome."""
    yield from _own_namespace(cluster, *RESTRICTED)


@pytest.fixture
def plain_namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace without Pod Security enforcement, for tests of the local platform itself
    (its pods are plain test workloads, not Maestro's)."""
    yield from _own_namespace(cluster)


@pytest.fixture(scope="module")
def deployed_operator(cluster: Cluster, mlflow_url: str) -> Iterator[local_cluster.ClusterConfig]:
    """The operator from manifests/overlays/local, run by the pod runner as its
    ServiceAccount with exactly the RBAC of manifests/base; removed after the module.
    The overlay points it at the local MLflow, so that is up first."""
    cfg = local_cluster.ClusterConfig()
    try:
        platform.deploy_operator(cfg)
        yield cfg
    finally:
        platform.remove_operator(cfg)


@pytest.fixture(scope="session")
def mlflow_url() -> Iterator[str]:
    """MLflow tracking server on PostgreSQL, its artifacts in the object store (both
    started here unless already up)."""
    cfg = mlflow_server.MlflowConfig()
    store_cfg = local_cluster.ClusterConfig(root=cfg.root)
    started_here = not mlflow_server.healthy(cfg)
    store_started_here = store_cfg.processes().pid(objectstore.PROCESS) is None
    try:
        mlflow_server.up(cfg)
    except mlflow_server.MlflowError as err:
        pytest.fail(str(err), pytrace=False)
    yield cfg.url
    if os.environ.get("MAESTRO_KEEP_CLUSTER"):
        return
    if started_here:
        mlflow_server.down(cfg)
    # The cluster's `down` stops the store otherwise (its pods' Secret points at it).
    if store_started_here and not local_cluster.is_up(store_cfg):
        objectstore.down(store_cfg)


@pytest.fixture(scope="session")
def prometheus_url(cluster: Cluster) -> Iterator[str]:
    """Debian's Prometheus scraping the local cluster's annotated pods (started here
    unless already up)."""
    cfg = prometheus.PrometheusConfig()
    started_here = not prometheus.ready(cfg)
    try:
        prometheus.up(cfg)
    except prometheus.PrometheusError as err:
        pytest.fail(str(err), pytrace=False)
    yield cfg.url
    if started_here and not os.environ.get("MAESTRO_KEEP_CLUSTER"):
        prometheus.down(cfg)


@pytest.fixture(scope="module")
def feast_repo() -> Iterator[Repo]:
    """A Feast repo of its own for the module (tests/feast_repo.py): parquet offline store,
    the Redis online store of `make services`, torn down afterwards. Under the platform's
    folder, not /tmp: a trainer pod has a /tmp of its own, as in a cluster."""
    problem = redis_unavailable()
    if problem:
        pytest.fail(problem, pytrace=False)
    where = REPO / ".maestro" / "test-data" / f"feast-{uuid.uuid4().hex[:8]}"
    where.mkdir(parents=True)
    try:
        with created_repo(where) as repo:
            yield repo
    finally:
        shutil.rmtree(where, ignore_errors=True)


GOVERNANCE_DB = "postgresql://maestro:maestro@127.0.0.1:5432/governance"


@pytest.fixture
def audit_db() -> Iterator[str]:
    """A fresh audit database for the test, dropped after it."""
    name = f"audit_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(GOVERNANCE_DB, connect_timeout=3)
    except psycopg2.OperationalError as err:
        pytest.fail(f"PostgreSQL (governance database) unavailable: {err}; run `make services`")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield GOVERNANCE_DB.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

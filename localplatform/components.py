"""What each process of the local control plane runs with: the command lines of etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kwok, metrics-server and the pod
runner (CoreDNS, the training operator, Vault and the object store have theirs in
`cluster_dns`, `training_operator`, `vault` and `objectstore`), the kubeconfigs they
authenticate with, kwok's configuration, and the simulated nodes with the capacity
ClusterConfig gives them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from maestro.localplatform.clusterconfig import POD_RUNNER_LABEL, ClusterConfig
from maestro.localplatform.pki import FRONT_PROXY_CLIENT, Pki
from maestro.localplatform.pods.usage import CPU_ANNOTATION, MEMORY_ANNOTATION

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "metrics-server",
    "coredns",
    "training-operator",
)
# In start order; `down` stops them in reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "metrics-server",
    "coredns",
    "pod-runner",
    # After the CRDs it reconciles are installed (it exits on a kind the API lacks).
    "training-operator",
    "vault",
    "vault-injector",
    # The filer (in "objectstore") flushes to the volume server as it stops.
    "objectstore-volume",
    "objectstore",
)


# kwok's kubelet resource metrics (its own kustomize/metrics/resource/metrics-resource.yaml
# less the pod_* series, which metrics-server does not read, and with the containers' real
# start time), fed by the usage the pod runner writes on each pod (pods.usage); a
# container without it reads kwok's defaults, 1m and 1Mi (never 0: metrics-server drops a
# pod with a 0).
KWOK_RESOURCE_METRICS = f"""---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterResourceUsage
metadata:
  name: usage-from-pod-runner
spec:
  usages:
  - usage:
      cpu:
        expression: |
          ("{CPU_ANNOTATION}" + container.name) in pod.metadata.annotations
          ? Quantity(pod.metadata.annotations["{CPU_ANNOTATION}" + container.name])
          : Quantity("1m")
      memory:
        expression: |
          ("{MEMORY_ANNOTATION}" + container.name) in pod.metadata.annotations
          ? Quantity(pod.metadata.annotations["{MEMORY_ANNOTATION}" + container.name])
          : Quantity("1Mi")
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Metric
metadata:
  name: metrics-resource
spec:
  path: "{{RESOURCE_METRICS_PATH}}"
  metrics:
  - name: scrape_error
    dimension: node
    kind: gauge
    value: '0'
  - name: container_start_time_seconds
    dimension: container
    kind: gauge
    labels:
    - {{name: container, value: 'container.name'}}
    - {{name: namespace, value: 'pod.metadata.namespace'}}
    - {{name: pod, value: 'pod.metadata.name'}}
    value: 'UnixSecond(pod.metadata.creationTimestamp)'
  - name: container_cpu_usage_seconds_total
    dimension: container
    kind: counter
    labels:
    - {{name: container, value: 'container.name'}}
    - {{name: namespace, value: 'pod.metadata.namespace'}}
    - {{name: pod, value: 'pod.metadata.name'}}
    value: 'pod.CumulativeUsage("cpu", container.name)'
  - name: container_memory_working_set_bytes
    dimension: container
    kind: gauge
    labels:
    - {{name: container, value: 'container.name'}}
    - {{name: namespace, value: 'pod.metadata.namespace'}}
    - {{name: pod, value: 'pod.metadata.name'}}
    value: 'pod.Usage("memory", container.name)'
  - name: node_cpu_usage_seconds_total
    dimension: node
    kind: counter
    value: 'node.CumulativeUsage("cpu")'
  - name: node_memory_working_set_bytes
    dimension: node
    kind: gauge
    value: 'node.Usage("memory")'
"""
# Where metrics-server finds a node's resource metrics on kwok's server (the annotation
# kwokctl's node template sets; metrics-server v0.8.0 reads it).
RESOURCE_METRICS_PATH = "/metrics/nodes/{nodeName}/metrics/resource"
RESOURCE_METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"
# The address metrics-server scrapes a node at: kwok's server on this host. (kwok's
# nodeIP, 10.245.0.1, is not routed here.)
NODE_ADDRESSES = [{"type": "InternalIP", "address": "127.0.0.1"}]


def kwok_config(cfg: ClusterConfig) -> str:
    """kwok simulates every pod except the project's own, which the pod runner really runs,
    and serves every node's kubelet resource metrics from the pods' measured usage."""
    return f"""apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  disregardStatusWithLabelSelector: {POD_RUNNER_LABEL}=true
  cidr: 10.245.0.1/16
  nodeIP: 10.245.0.1
  serverAddress: 127.0.0.1:{cfg.kwok_port}
""" + KWOK_RESOURCE_METRICS.replace("{RESOURCE_METRICS_PATH}", RESOURCE_METRICS_PATH)


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: maestro-local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: maestro-local
  context:
    cluster: maestro-local
    user: {user}
current-context: maestro-local
"""
    )
    path.chmod(0o600)


def node_capacity(cfg: ClusterConfig) -> dict[str, str]:
    """What each node advertises, as capacity and as allocatable (nothing is reserved)."""
    return {"cpu": cfg.node_cpu, "memory": cfg.node_memory, "pods": cfg.node_pods}


def node_status_patch(cfg: ClusterConfig) -> str:
    """The status a node keeps (kwok's heartbeats keep what the node says) and that `up`
    writes again, so a changed MAESTRO_NODE_* reaches nodes that exist already."""
    resources = node_capacity(cfg)
    return json.dumps(
        {"status": {"capacity": resources, "allocatable": resources, "addresses": NODE_ADDRESSES}}
    )


def node_manifest(name: str, cfg: ClusterConfig) -> str:
    resources = json.dumps(node_capacity(cfg))
    metrics_path = RESOURCE_METRICS_PATH.replace("{nodeName}", name)
    return f"""apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/node: fake
    {RESOURCE_METRICS_PATH_ANNOTATION}: {metrics_path}
  labels:
    type: kwok
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/agent: ""
status:
  allocatable: {resources}
  capacity: {resources}
  addresses: {json.dumps(NODE_ADDRESSES)}
  nodeInfo:
    architecture: amd64
    kubeletVersion: fake
    kubeProxyVersion: fake
    operatingSystem: linux
---
"""


def etcd_url(cfg: ClusterConfig) -> str:
    return f"http://127.0.0.1:{cfg.etcd_port}"


def etcd_argv(cfg: ClusterConfig) -> list[str]:
    url = etcd_url(cfg)
    return [
        str(cfg.bin / "etcd"),
        "--name=maestro",
        f"--data-dir={cfg.state / 'etcd'}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls=http://127.0.0.1:{cfg.etcd_port + 1}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{cfg.etcd_port + 1}",
        f"--initial-cluster=maestro=http://127.0.0.1:{cfg.etcd_port + 1}",
        # Throwaway test data: durability is not worth an fsync per write.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ]


# What the API server's audit log records: every request of a ServiceAccount outside
# kube-system (the operator's, the serving pods'), at Metadata level (who, verb, resource,
# response code; no bodies), so tests can compare what was used with what RBAC grants.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def audit_log(cfg: ClusterConfig) -> Path:
    return cfg.state / "audit" / "audit.log"


def write_audit_policy(cfg: ClusterConfig) -> Path:
    path = cfg.state / "audit" / "policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(AUDIT_POLICY)
    return path


def apiserver_argv(cfg: ClusterConfig, pki: Pki) -> list[str]:
    return [
        str(cfg.bin / "kube-apiserver"),
        f"--etcd-servers={etcd_url(cfg)}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={cfg.apiserver_port}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--cert-dir={cfg.state / 'apiserver-certs'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--authorization-mode=Node,RBAC",
        # As on clusters that check blockOwnerDeletion against the owner's finalizers.
        "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        "--allow-privileged=true",
        "--profiling=false",
        f"--audit-policy-file={cfg.state / 'audit' / 'policy.yaml'}",
        f"--audit-log-path={audit_log(cfg)}",
        "--audit-log-format=json",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
        # The aggregation layer (metrics.k8s.io, custom.metrics.k8s.io): the API server
        # calls extension API servers with this client certificate and the caller's name
        # in these headers, which they trust through the front-proxy CA.
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        "--v=1",
    ]


def controller_manager_argv(cfg: ClusterConfig, pki: Pki, kubeconfig: Path) -> list[str]:
    return [
        str(cfg.bin / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.controller_manager_port}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        "--controllers=*",
        # kwok nodes never run a kubelet; the faster HPA loop keeps autoscaling tests short.
        "--horizontal-pod-autoscaler-sync-period=5s",
        # kwok posts node status about once a minute, around the default 50 s grace
        # period: nodes flapped NotReady and the node lifecycle controller marked every
        # pod on them unready. kwok renews leases too (below); this is the safety margin.
        "--node-monitor-grace-period=2m",
        "--v=1",
    ]


def scheduler_argv(cfg: ClusterConfig, kubeconfig: Path) -> list[str]:
    return [
        str(cfg.bin / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.scheduler_port}",
        "--leader-elect=false",
        "--v=1",
    ]


def kwok_argv(cfg: ClusterConfig, kwok_config: Path) -> list[str]:
    return [
        str(cfg.bin / "kwok"),
        f"--kubeconfig={cfg.kubeconfig}",
        f"--config={kwok_config}",
        # Node leases, renewed well within their duration: the node lifecycle
        # controller's heartbeat for each simulated node.
        "--node-lease-duration-seconds=40",
    ]


def pod_runner_argv(cfg: ClusterConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "maestro.localplatform.podrunner",
        f"--kubeconfig={cfg.kubeconfig}",
        f"--state={cfg.pods}",
        f"--pod-cidr={cfg.pod_cidr}",
        f"--cluster-dns={cfg.dns_ip}",
        f"--cluster-domain={cfg.cluster_domain}",
    ]


def metrics_server_argv(cfg: ClusterConfig) -> list[str]:
    """metrics-server scraping kwok's kubelet resource metrics every 10 s (its minimum),
    as the platform's admin (it lists nodes and pods, and reads the front-proxy CA)."""
    return [
        str(cfg.bin / "metrics-server"),
        f"--kubeconfig={cfg.kubeconfig}",
        f"--authentication-kubeconfig={cfg.kubeconfig}",
        f"--authorization-kubeconfig={cfg.kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.metrics_server_port}",
        f"--cert-dir={cfg.state / 'metrics-server'}",
        # kwok's server answers HTTPS with a self-signed certificate.
        "--kubelet-insecure-tls",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-port={cfg.kwok_port}",
        "--metric-resolution=10s",
        # Must be under 0.9 x the resolution.
        "--kubelet-request-timeout=5s",
    ]


def metrics_apiservice(cfg: ClusterConfig) -> str:
    """metrics.k8s.io served by the metrics-server process on this host: an ExternalName
    Service to localhost (the aggregator then calls https://localhost:<port>; a host
    process has no pod IP for a ClusterIP Service's endpoints)."""
    return f"""apiVersion: v1
kind: Service
metadata: {{name: metrics-server, namespace: kube-system}}
spec: {{type: ExternalName, externalName: localhost}}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.metrics.k8s.io}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {{name: metrics-server, namespace: kube-system, port: {cfg.metrics_server_port}}}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
"""

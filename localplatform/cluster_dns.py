"""The cluster DNS: CoreDNS as a process of the platform on the kube-dns ClusterIP, its
Corefile and the kube-dns Service that reserves the address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from maestro.localplatform.clusterconfig import ClusterConfig, ClusterError
from maestro.localplatform.kubectl import apply_manifests
from maestro.localplatform.pods.services import HOST_SERVED_LABEL, route_service_range


def corefile(cfg: ClusterConfig) -> str:
    """kubeadm's default Corefile (less its Prometheus endpoint), on the kube-dns ClusterIP,
    answering for the cluster's Services and pods from the local API server and forwarding
    every other name to the host's resolver. One change: a name that does not exist yet is
    cached 5 s rather than 30, so a replica polling for its Master's Service (which has an
    address only once the Master's pod is ready) finds it soon after."""
    domain = cfg.cluster_domain
    return f""".:53 {{
    bind {cfg.dns_ip}
    errors
    health 127.0.0.1:{cfg.dns_health_port} {{
        lameduck 1s
    }}
    ready 127.0.0.1:{cfg.dns_ready_port}
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        kubeconfig {cfg.kubeconfig} maestro-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . /etc/resolv.conf {{
        max_concurrent 1000
    }}
    cache 30 {{
        denial 9984 5
    }}
    loop
    reload
    loadbalance
}}
"""


def coredns_argv(cfg: ClusterConfig, corefile_path: Path) -> list[str]:
    return [str(cfg.bin / "coredns"), "-conf", str(corefile_path)]


def kube_dns_service(cfg: ClusterConfig) -> str:
    """kube-system/kube-dns on the DNS ClusterIP, as kubeadm names it. CoreDNS runs as a
    process of the platform, not in a pod, so the Service has no selector and no endpoints:
    it reserves the address, and its label tells the pod runner's Service proxy that a
    process of the platform answers on it."""
    return f"""apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/name: CoreDNS
    {HOST_SERVED_LABEL}: "true"
spec:
  clusterIP: {cfg.dns_ip}
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, protocol: TCP}}
"""


def start_cluster_dns(cfg: ClusterConfig) -> None:
    """CoreDNS on the kube-dns ClusterIP, port 53, the kubernetes plugin reading the API as
    the platform's admin; the Service range is routed to loopback first (the pod runner
    would, later), which needs root, as binding port 53 does."""
    if not route_service_range(ipaddress.IPv4Network(cfg.service_cidr)):
        raise ClusterError(
            f"the cluster DNS listens on {cfg.dns_ip}:53, in the Service range "
            f"{cfg.service_cidr} routed to loopback: that needs root (`ip route add local`)"
        )
    path = cfg.state / "Corefile"
    path.write_text(corefile(cfg))
    apply_manifests(cfg, kube_dns_service(cfg), force=False)
    cfg.processes().start("coredns", coredns_argv(cfg, path))

"""The pod runner's table of local pods and its two loops: the watch (list, then watch
from the list's resourceVersion) that admits and terminates pods, and the main loop that
steps each pod's processes and publishes its status."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from maestro.localplatform.clusterconfig import pod_workdir
from maestro.localplatform.pods import dns, env, usage, volumes
from maestro.localplatform.pods.addresses import AddressPool
from maestro.localplatform.pods.api import PodApi
from maestro.localplatform.pods.lifecycle import termination_grace
from maestro.localplatform.pods.network import POD_CIDR, choose_pod_network
from maestro.localplatform.pods.processes import (
    RESOLV_CONF,
    Container,
    LocalPod,
    Supervisor,
    now,
)
from maestro.localplatform.pods.services import SERVICE_CIDR, ServiceProxy, route_service_range
from maestro.localplatform.pods.status import pod_status, stopped_status
from maestro.localplatform.pods.usage_reporter import UsageReporter

TICK = 0.25
SERVICES_POLL = 1.0
# Projected ServiceAccount tokens are issued again this often (seconds).
TOKEN_REFRESH = 480.0
# When the runner itself is stopped (the platform goes down), every pod gets at most this
# grace period: the runner's own stop (procs.ProcessTable.stop) waits 10 s before SIGKILL.
SHUTDOWN_GRACE = 5.0
log = logging.getLogger("pod-runner")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class PodRunner:
    """The kubelet for the pods labelled maestro.dev/local-run=true: admits them, runs
    their containers through the Supervisor and writes their status; `stopping` ends
    `run`."""

    def __init__(
        self,
        kubeconfig: Path,
        state: Path,
        venv_bin: Path,
        pod_cidr: ipaddress.IPv4Network = POD_CIDR,
        platform: Mapping[str, str] | None = None,
        cluster_dns: dns.ClusterDns | None = None,
    ) -> None:
        """`platform`: the mark (procs.MARKER) to give every container's processes;
        `cluster_dns`: the kubelet's --cluster-dns and --cluster-domain (pods.dns)."""
        self.kubeconfig = kubeconfig
        self.state = state
        self.venv_bin = venv_bin
        self.api = PodApi(kubeconfig)
        self.pods: dict[str, LocalPod] = {}
        self.lock = threading.Lock()
        self.addresses = AddressPool(choose_pod_network(pod_cidr))
        self.terminating: set[str] = set()
        self.terminations: list[threading.Thread] = []  # pods being deleted, each a thread
        self.stopping = threading.Event()
        self.supervisor = Supervisor(self.container_env, platform)
        self.services = ServiceProxy() if route_service_range() else None
        self.usage = UsageReporter(self.api)
        # The cluster DNS listens on a ClusterIP, and each container's resolv.conf is bound
        # in a mount namespace of its own: both need root, as the Service range's route.
        self.cluster_dns = cluster_dns if self.services is not None else None
        self.host_resolver = dns.parse_resolv_conf(_read_text(Path(RESOLV_CONF)))
        if self.services is None:
            log.warning(
                "cannot route %s to loopback (needs root): no ClusterIP answers and pods "
                "resolve names with the host's resolver",
                SERVICE_CIDR,
            )

    def container_env(self, pod: LocalPod, c: dict[str, Any]) -> dict[str, str]:
        sources = self.api.read_sources(pod.namespace, env.referenced_sources(c))
        return env.container_env(pod.env, c, pod.body, sources)

    # ---- lifecycle

    def admit(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        with self.lock:
            existing = self.pods.get(key)
            if existing and existing.uid == meta["uid"]:
                # The server's copy may predate the status this runner publishes: keep
                # the address it chose, or a container started now would get an empty
                # status.podIP through its fieldRef env.
                status = body.setdefault("status", {})
                status["podIP"] = status["hostIP"] = existing.ip
                existing.body = body
                return
        if not self.api.claim(body):
            return
        workdir = self.state / pod_workdir(meta)
        workdir.mkdir(parents=True, exist_ok=True)
        ip = self.addresses.keep_or_allocate((body.get("status") or {}).get("podIP"))
        body.setdefault("status", {})["podIP"] = ip
        body["status"]["hostIP"] = ip
        pod = LocalPod(meta["namespace"], meta["name"], meta["uid"], ip, workdir, body)
        pod.env = env.pod_base_env(
            venv_bin=self.venv_bin,
            host_path=os.environ.get("PATH", "/usr/bin:/bin"),
            workdir=workdir,
            hostname=pod.name,
            ip=ip,
        )
        try:
            kc = self.api.service_account_kubeconfig(
                body["spec"], pod.namespace, pod.name, pod.uid, workdir
            )
            if kc:
                pod.env["KUBECONFIG"] = str(kc)
            self.make_volumes(pod)
            self.write_resolv_conf(pod)
            for spec in body["spec"].get("initContainers") or []:
                pod.init_containers.append(Container(spec, workdir / f"{spec['name']}.log"))
            for spec in body["spec"].get("containers") or []:
                pod.containers.append(Container(spec, workdir / f"{spec['name']}.log"))
        except Exception as err:
            log.exception("cannot prepare %s", key)
            pod.init_containers = []
            pod.containers = [
                Container(c, workdir / f"{c['name']}.log", error=str(err))
                for c in body["spec"].get("containers") or []
            ]
        with self.lock:
            self.pods[key] = pod
        log.info("admitted %s at %s", key, ip)

    def make_volumes(self, pod: LocalPod) -> None:
        """The pod's volumes, its projected tokens issued (again) now."""
        spec = pod.body["spec"]
        pod.volumes = volumes.make_volumes(
            pod.body,
            pod.workdir,
            lambda audiences, seconds: self.api.service_account_token(
                spec, pod.namespace, pod.name, pod.uid, audiences, seconds
            ),
            lambda name: self.api.config_map(pod.namespace, name),
        )
        pod.volumes_made = time.monotonic()

    def write_resolv_conf(self, pod: LocalPod) -> None:
        """The pod's resolv.conf in its work dir, as the kubelet writes it (pods.dns)."""
        resolver = dns.pod_resolver(
            pod.namespace, pod.body["spec"], self.cluster_dns, self.host_resolver
        )
        if resolver is None:
            return
        pod.resolv_conf = pod.workdir / "resolv.conf"
        pod.resolv_conf.write_text(resolver.text())

    def refresh_tokens(self, pod: LocalPod) -> None:
        """As the kubelet does, projected tokens are renewed well before they expire (the
        shortest a pod may ask for is 10 minutes)."""
        if not pod.volumes or time.monotonic() - pod.volumes_made < TOKEN_REFRESH:
            return
        try:
            self.make_volumes(pod)
        except Exception as err:
            log.warning("tokens of %s not renewed: %s", pod.key, err)
            pod.volumes_made = time.monotonic() - TOKEN_REFRESH + 30

    def status(self, pod: LocalPod, stopped: bool = False) -> dict[str, Any]:
        return pod_status(
            [c.snapshot() for c in pod.containers],
            init_containers=[c.snapshot() for c in pod.init_containers],
            initialized=pod.initialized,
            ip=pod.ip,
            start_time=pod.start_time,
            restart_policy=pod.body["spec"].get("restartPolicy", "Always"),
            deadline_exceeded=pod.deadline_exceeded,
            stopped=stopped,
            qos_class=(pod.body.get("status") or {}).get("qosClass", "BestEffort"),
            previous=pod.last_status,
            now=now(),
        )

    def publish(self, pod: LocalPod) -> None:
        status = self.status(pod)
        if status == pod.last_status:
            return
        try:
            self.api.patch_status(pod.namespace, pod.name, status)
            pod.last_status = status
        except ApiException as err:
            if err.status == 404:
                self.forget(pod)
            else:
                log.warning("status of %s not written: %s", pod.key, err.reason)

    def forget(self, pod: LocalPod) -> None:
        """A pod gone from the server: its processes are killed at once."""
        self.supervisor.stop([pod], grace=0)
        with self.lock:
            if self.pods.get(pod.key) is pod:
                del self.pods[pod.key]
        self.addresses.release(pod.ip)

    def terminate(self, body: dict[str, Any]) -> None:
        try:
            self._terminate(body)
        finally:
            with self.lock:
                self.terminating.discard(body["metadata"]["uid"])

    def _terminate(self, body: dict[str, Any]) -> None:
        key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        # Taken out of the table first so the main loop no longer steps or restarts it.
        with self.lock:
            pod = self.pods.pop(key, None)
        if pod is not None:
            self.supervisor.stop([pod], termination_grace(body), pre_stop=True)
            self.addresses.release(pod.ip)
            final: dict[str, Any] | None = self.status(pod, stopped=True)
        elif body["spec"].get("nodeName"):  # run by a runner before this one
            final = stopped_status(body.get("status") or {}, now())
        else:  # never scheduled: the pod garbage collector's
            final = None
        # As a kubelet does: a terminal phase once the containers are gone (the job
        # controller only then drops its finalizer), then the final delete; the object
        # stays until the finalizer goes too, which only this runner removes.
        if final is not None and final != body.get("status"):
            try:
                self.api.patch_status(
                    body["metadata"]["namespace"], body["metadata"]["name"], final
                )
            except ApiException as err:
                if err.status != 404:
                    log.warning("final status of %s not written: %s", key, err.reason)
        try:
            self.api.delete_now(body)
            self.api.release(body)
            log.info("stopped and removed %s", key)
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("cannot delete %s: %s %s", key, err.status, err.reason)

    # ---- loops

    def watch_pods(self) -> None:
        """List, then watch from the list's resourceVersion, as informers do: a watch that
        ends resumes where it stopped, and a fresh list after an error or an expired
        version also forgets the pods that vanished in between."""
        version: str | None = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    version = self.relist()
                for kind, body in self.api.watch_pods(version):
                    version = body["metadata"].get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        self.handle(kind, body)
            except Exception as err:
                if not (isinstance(err, ApiException) and err.status == 410):
                    log.warning("pod watch interrupted: %s; listing again", err)
                    time.sleep(0.5)
                version = None

    def relist(self) -> str:
        bodies, version = self.api.list_pods()
        present = {
            (b["metadata"]["namespace"], b["metadata"]["name"], b["metadata"]["uid"])
            for b in bodies
        }
        with self.lock:
            known = list(self.pods.values())
        for pod in known:
            if (pod.namespace, pod.name, pod.uid) not in present:
                log.info("%s is gone: stopping it", pod.key)
                self.forget(pod)
        for body in bodies:
            self.handle("ADDED", body)
        return version

    def handle(self, kind: str, body: dict[str, Any]) -> None:
        meta, spec = body["metadata"], body["spec"]
        phase = (body.get("status") or {}).get("phase")
        if kind == "DELETED":
            with self.lock:
                pod = self.pods.get(f"{meta['namespace']}/{meta['name']}")
            if pod is not None and pod.uid == meta["uid"]:
                self.forget(pod)
            return
        if meta.get("deletionTimestamp"):
            with self.lock:
                # One termination per pod: a second one would find it out of the table and
                # release the finalizer while the first still waits for the process.
                if meta["uid"] in self.terminating:
                    return
                self.terminating.add(meta["uid"])
            thread = threading.Thread(target=self.terminate, args=(body,), daemon=True)
            self.terminations = [t for t in self.terminations if t.is_alive()] + [thread]
            thread.start()
            return
        key = f"{meta['namespace']}/{meta['name']}"
        with self.lock:
            known = key in self.pods
        if not spec.get("nodeName"):
            return
        if not known and phase in ("Succeeded", "Failed"):
            return
        self.admit(body)

    def follow_services(self) -> None:
        """Keep the ClusterIP listeners in step with Services and their endpoints."""
        assert self.services is not None
        while not self.stopping.is_set():
            try:
                self.services.sync(*self.api.services_and_slices())
            except Exception as err:
                log.warning("services not synced: %s", err)
            self.stopping.wait(SERVICES_POLL)

    def follow_usage(self) -> None:
        """Every usage.INTERVAL seconds, the usage of every pod's containers."""
        while not self.stopping.wait(usage.INTERVAL):
            with self.lock:
                pods = list(self.pods.values())
            try:
                self.usage.measure(pods, time.monotonic())
            except Exception:
                log.exception("usage not measured")

    def run(self) -> None:
        threading.Thread(target=self.watch_pods, daemon=True).start()
        threading.Thread(target=self.follow_usage, daemon=True).start()
        if self.services is not None:
            threading.Thread(target=self.follow_services, daemon=True).start()
        while not self.stopping.is_set():
            with self.lock:
                pods = list(self.pods.values())
            for pod in pods:
                try:
                    self.supervisor.step(pod)
                    self.publish(pod)
                    self.refresh_tokens(pod)
                except Exception:
                    log.exception("pod %s", pod.key)
            time.sleep(TICK)
        with self.lock:
            pods = list(self.pods.values())
        # Pods being deleted are out of the table: their preStop hooks are cut short and
        # their threads given the same grace, so none is left running unsignalled.
        self.supervisor.hooks_cut.set()
        self.supervisor.stop(pods, grace=SHUTDOWN_GRACE)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for thread in self.terminations:
            thread.join(timeout=max(deadline - time.monotonic(), 0))

"""The local pod runner: the kubelet for pods of the project's own image.

Pods labelled `maestro.dev/local-run=true` and bound to a node are run as local
processes in the project's virtualenv with the pod's command, args and env, each on
its own loopback address. Their phase, readiness (from the readiness probe), pod IP
and exit codes are written back to the pod status, so Jobs complete through the real
job controller and Services find real endpoints. kwok keeps handling every other pod.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.harness.cluster import pod_workdir

LABEL = "maestro.dev/local-run"
# Held on every pod this runner admits and dropped only once its processes are dead, so
# a pod object never disappears (kwok deletes finalizer-free pods a second after their
# deletionTimestamp) while its process still runs and holds its address.
FINALIZER = "maestro.dev/pod-runner"
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
FALLBACK_CIDR = ipaddress.ip_network("127.1.0.0/16")
TICK = 0.25
log = logging.getLogger("pod-runner")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def choose_pod_network() -> ipaddress.IPv4Network:
    """Pod IPs come from a range routed to loopback, so Services may list them as
    endpoints (the API refuses 127.0.0.0/8 there); fall back to 127.1/16 when the
    route cannot be added (not root)."""

    def bindable(ip: str) -> bool:
        with socket.socket() as s:
            try:
                s.bind((ip, 0))
                return True
            except OSError:
                return False

    probe = str(POD_CIDR.network_address + 1)
    if not bindable(probe):
        subprocess.run(
            ["ip", "route", "add", "local", str(POD_CIDR), "dev", "lo"],
            capture_output=True,
            check=False,
        )
    if bindable(probe):
        return POD_CIDR  # type: ignore[return-value]
    log.warning(
        "cannot route %s to loopback (needs root); pod IPs fall back to %s, "
        "which Services cannot list as endpoints",
        POD_CIDR,
        FALLBACK_CIDR,
    )
    return FALLBACK_CIDR  # type: ignore[return-value]


# ---------------------------------------------------------------- pure helpers

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: unknown references stay as written, $$ escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


def field_ref(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": status.get("podIP"),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def probe_target(probe: dict[str, Any], container: dict[str, Any]) -> int | None:
    action = probe.get("httpGet") or probe.get("tcpSocket")
    if not action:
        return None
    port = action.get("port")
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe names port {port!r}, which the container does not declare")


# ---------------------------------------------------------------- processes


@dataclass
class Container:
    spec: dict[str, Any]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    restarts: int = 0
    exit_code: int | None = None
    finished_at: str | None = None
    ready: bool = False
    next_start: float = 0.0
    probe_failures: int = 0
    next_probe: float = 0.0
    error: str | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])


@dataclass
class LocalPod:
    namespace: str
    name: str
    uid: str
    ip: str
    workdir: Path
    body: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    start_time: str = field(default_factory=now)
    started_mono: float = field(default_factory=time.monotonic)
    deadline_exceeded: bool = False
    last_status: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class PodRunner:
    def __init__(self, kubeconfig: Path, state: Path, venv_bin: Path) -> None:
        self.kubeconfig = kubeconfig
        self.state = state
        self.venv_bin = venv_bin
        self.api_client = config.new_client_from_config(str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.pods: dict[str, LocalPod] = {}
        self.lock = threading.Lock()
        self.network = choose_pod_network()
        self.used_ips: set[str] = set()
        self.last_ip = 0  # offset in the network of the address given last
        self.terminating: set[str] = set()
        self.stopping = threading.Event()
        host = self.api_client.configuration.host
        self.server = host
        self.ca = self.api_client.configuration.ssl_ca_cert

    # ---- IPs and environment

    def allocate_ip(self) -> str:
        """The next free address after the last one given, as host-local IPAM does: an
        address just freed is not handed out again at once, so a client still calling a
        deleted pod reaches nothing rather than its replacement."""
        size = self.network.num_addresses
        for step in range(1, size):
            index = (self.last_ip + step) % size
            ip = str(self.network.network_address + index)
            if index == size - 1 or ip.endswith((".0", ".1")) or ip in self.used_ips:
                continue
            self.last_ip = index
            self.used_ips.add(ip)
            return ip
        raise RuntimeError("pod network exhausted")

    def _secret_or_cm(self, kind: str, ns: str, name: str, key: str | None) -> dict[str, str]:
        if kind == "secret":
            obj = self.core.read_namespaced_secret(name, ns)
            data = {k: base64.b64decode(v).decode() for k, v in (obj.data or {}).items()}
        else:
            obj = self.core.read_namespaced_config_map(name, ns)
            data = dict(obj.data or {})
        if key is not None:
            if key not in data:
                raise KeyError(f"{kind} {ns}/{name} has no key {key!r}")
            return {key: data[key]}
        return data

    def service_account_kubeconfig(self, pod: LocalPod) -> Path | None:
        spec = pod.body["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return None
        sa = spec.get("serviceAccountName") or "default"
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[],
                expiration_seconds=86400,
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=pod.name, uid=pod.uid
                ),
            )
        )
        token = self.core.create_namespaced_service_account_token(
            sa, pod.namespace, req
        ).status.token
        path = pod.workdir / "serviceaccount.kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: local\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority: {self.ca}\n"
            f"users:\n- name: {sa}\n  user:\n    token: {token}\n"
            f"contexts:\n- name: local\n  context:\n    cluster: local\n    user: {sa}\n"
            f"    namespace: {pod.namespace}\ncurrent-context: local\n"
        )
        path.chmod(0o600)
        return path

    def container_env(self, pod: LocalPod, c: dict[str, Any]) -> dict[str, str]:
        env = dict(pod.env)
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind in ("configMapRef", "secretRef"):
                ref = src.get(kind)
                if ref:
                    try:
                        data = self._secret_or_cm(
                            "secret" if kind == "secretRef" else "cm",
                            pod.namespace,
                            ref["name"],
                            None,
                        )
                    except ApiException:
                        if ref.get("optional"):
                            continue
                        raise
                    env.update({prefix + k: v for k, v in data.items()})
        for item in c.get("env") or []:
            name = item["name"]
            if "value" in item or "valueFrom" not in item:
                env[name] = expand(item.get("value", ""), env)
                continue
            vf = item["valueFrom"]
            if "fieldRef" in vf:
                env[name] = field_ref(pod.body, vf["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind = "secret" if "secretKeyRef" in vf else "cm"
                ref = vf.get("secretKeyRef") or vf["configMapKeyRef"]
                try:
                    env[name] = self._secret_or_cm(kind, pod.namespace, ref["name"], ref["key"])[
                        ref["key"]
                    ]
                except (ApiException, KeyError):
                    if not ref.get("optional"):
                        raise
            elif "resourceFieldRef" in vf:
                res = c.get("resources") or {}
                kind, _, rname = vf["resourceFieldRef"]["resource"].partition(".")
                env[name] = str((res.get(kind) or {}).get(rname, "0"))
        return env

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
        if not self.claim(body):
            return
        workdir = self.state / pod_workdir(meta)
        workdir.mkdir(parents=True, exist_ok=True)
        ip = (body.get("status") or {}).get("podIP")
        if ip and ipaddress.ip_address(ip) in self.network and ip not in self.used_ips:
            self.used_ips.add(ip)
        else:
            ip = self.allocate_ip()
        body.setdefault("status", {})["podIP"] = ip
        body["status"]["hostIP"] = ip
        pod = LocalPod(meta["namespace"], meta["name"], meta["uid"], ip, workdir, body)
        pod.env = {
            "PATH": f"{self.venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(workdir),
            "HOSTNAME": pod.name,
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
            # Programs of this project bind to this address instead of 0.0.0.0, so
            # several pods can listen on the same containerPort.
            "MAESTRO_BIND_HOST": ip,
        }
        try:
            kc = self.service_account_kubeconfig(pod)
            if kc:
                pod.env["KUBECONFIG"] = str(kc)
            for spec in body["spec"].get("containers") or []:
                pod.containers.append(Container(spec, workdir / f"{spec['name']}.log"))
        except Exception as err:
            log.exception("cannot prepare %s", key)
            pod.containers = [
                Container(c, workdir / f"{c['name']}.log", error=str(err))
                for c in body["spec"].get("containers") or []
            ]
        with self.lock:
            self.pods[key] = pod
        log.info("admitted %s at %s", key, ip)

    def start_container(self, pod: LocalPod, c: Container) -> None:
        try:
            env = self.container_env(pod, c.spec)
            command = [expand(a, env) for a in (c.spec.get("command") or ["maestro"])]
            args = [expand(a, env) for a in (c.spec.get("args") or [])]
            exe = shutil.which(command[0], path=env["PATH"]) or command[0]
        except Exception as err:
            c.error = f"CreateContainerConfigError: {err}"
            return
        workdir = c.spec.get("workingDir")
        cwd = workdir if workdir and os.path.isdir(workdir) else pod.workdir
        with c.log_path.open("ab") as out:
            try:
                c.proc = subprocess.Popen(
                    [exe, *command[1:], *args],
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as err:
                c.error = f"StartError: {err}"
                c.exit_code, c.finished_at = 128, now()
                return
        c.started_at, c.exit_code, c.finished_at, c.ready, c.error = now(), None, None, False, None
        probe = c.spec.get("readinessProbe") or {}
        c.next_probe = time.monotonic() + float(probe.get("initialDelaySeconds", 0))
        c.probe_failures = 0
        log.info(
            "started %s/%s pid %s: %s", pod.key, c.name, c.proc.pid, [exe, *command[1:], *args]
        )

    def probe(self, pod: LocalPod, c: Container) -> None:
        spec = c.spec.get("readinessProbe")
        if not spec:
            c.ready = True
            return
        if time.monotonic() < c.next_probe:
            return
        period = min(float(spec.get("periodSeconds", 10)), 1.0)
        c.next_probe = time.monotonic() + period
        ok = False
        try:
            port = probe_target(spec, c.spec)
            if "httpGet" in spec:
                g = spec["httpGet"]
                url = f"{g.get('scheme', 'HTTP').lower()}://{pod.ip}:{port}{g.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=float(spec.get("timeoutSeconds", 1))) as r:
                    ok = 200 <= r.status < 400
            elif "tcpSocket" in spec:
                with socket.create_connection((pod.ip, port or 0), timeout=1):
                    ok = True
            elif "exec" in spec:
                ok = (
                    subprocess.run(
                        spec["exec"]["command"],
                        env=self.container_env(pod, c.spec),
                        capture_output=True,
                        timeout=5,
                    ).returncode
                    == 0
                )
        except (urllib.error.URLError, OSError, ValueError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            c.probe_failures, c.ready = 0, True
        else:
            c.probe_failures += 1
            if c.probe_failures >= int(spec.get("failureThreshold", 3)) or not c.ready:
                c.ready = False

    def step(self, pod: LocalPod) -> None:
        restart = pod.body["spec"].get("restartPolicy", "Always")
        deadline = pod.body["spec"].get("activeDeadlineSeconds")
        if (
            deadline
            and not pod.deadline_exceeded
            and time.monotonic() - pod.started_mono > deadline
        ):
            pod.deadline_exceeded = True
            for c in pod.containers:
                self.kill(c, grace=0)
        for c in pod.containers:
            if c.error and c.proc is None:
                continue
            if c.proc is None:
                due = time.monotonic() >= c.next_start and not pod.deadline_exceeded
                if due and (c.exit_code is None or self.should_restart(restart, c.exit_code)):
                    if c.exit_code is not None:
                        c.restarts += 1
                    self.start_container(pod, c)
                continue
            code = c.proc.poll()
            if code is None:
                self.probe(pod, c)
                continue
            c.proc, c.exit_code, c.finished_at, c.ready = None, code, now(), False
            c.next_start = time.monotonic() + min(10.0, 2.0 ** min(c.restarts, 4))
            log.info("%s/%s exited with %s", pod.key, c.name, code)

    @staticmethod
    def should_restart(policy: str, code: int) -> bool:
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    @staticmethod
    def kill(c: Container, grace: float) -> None:
        if c.proc is None:
            return
        try:
            os.killpg(c.proc.pid, signal.SIGTERM)
            c.proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGKILL)
        code = c.proc.wait()
        c.proc, c.exit_code, c.finished_at, c.ready = None, code, now(), False

    # ---- status

    def status(self, pod: LocalPod) -> dict[str, Any]:
        restart = pod.body["spec"].get("restartPolicy", "Always")
        statuses = []
        for c in pod.containers:
            state: dict[str, Any]
            if c.proc is not None:
                state = {"running": {"startedAt": c.started_at}}
            elif c.error and c.exit_code is None:
                reason, _, msg = c.error.partition(": ")
                state = {"waiting": {"reason": reason, "message": msg}}
            elif c.exit_code is not None:
                state = {
                    "terminated": {
                        "exitCode": c.exit_code,
                        "reason": "Completed" if c.exit_code == 0 else "Error",
                        "startedAt": c.started_at,
                        "finishedAt": c.finished_at,
                    }
                }
                if self.should_restart(restart, c.exit_code) and not pod.deadline_exceeded:
                    state = {
                        "waiting": {
                            "reason": "CrashLoopBackOff" if c.exit_code else "Restarting",
                            "message": f"exited with {c.exit_code}; restarting",
                        }
                    }
            else:
                state = {"waiting": {"reason": "ContainerCreating"}}
            statuses.append(
                {
                    "name": c.name,
                    "image": c.spec.get("image", ""),
                    "imageID": "",
                    "containerID": f"local://{c.proc.pid}" if c.proc else "",
                    "ready": c.ready and c.proc is not None,
                    "started": c.proc is not None,
                    "restartCount": c.restarts,
                    "state": state,
                }
            )
        terminal = [s for s in statuses if "terminated" in s["state"]]
        if pod.deadline_exceeded:
            phase, reason = "Failed", "DeadlineExceeded"
        elif statuses and len(terminal) == len(statuses):
            failed = any(s["state"]["terminated"]["exitCode"] != 0 for s in terminal)
            phase, reason = ("Failed" if failed else "Succeeded"), None
        elif any(
            s["started"]
            or "terminated" in s["state"]
            or s["state"].get("waiting", {}).get("reason") in ("CrashLoopBackOff", "Restarting")
            for s in statuses
        ):
            phase, reason = "Running", None
        else:
            phase, reason = "Pending", None
        ready = phase == "Running" and all(s["ready"] for s in statuses)
        prev = {c["type"]: c for c in ((pod.last_status or {}).get("conditions") or [])}

        def cond(kind: str, ok: bool) -> dict[str, Any]:
            value = "True" if ok else "False"
            old = prev.get(kind)
            since = old["lastTransitionTime"] if old and old["status"] == value else now()
            return {
                "type": kind,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": since,
            }

        out: dict[str, Any] = {
            "phase": phase,
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "hostIP": pod.ip,
            "hostIPs": [{"ip": pod.ip}],
            "startTime": pod.start_time,
            "conditions": [
                cond("PodScheduled", True),
                cond("Initialized", True),
                cond("ContainersReady", ready),
                cond("Ready", ready),
            ],
            "containerStatuses": statuses,
            "qosClass": (pod.body.get("status") or {}).get("qosClass", "BestEffort"),
        }
        if reason:
            out["reason"] = reason
        return out

    def publish(self, pod: LocalPod) -> None:
        status = self.status(pod)
        if status == pod.last_status:
            return
        try:
            self.core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": status})
            pod.last_status = status
        except ApiException as err:
            if err.status == 404:
                self.forget(pod)
            else:
                log.warning("status of %s not written: %s", pod.key, err.reason)

    def forget(self, pod: LocalPod) -> None:
        for c in pod.containers:
            self.kill(c, grace=0)
        with self.lock:
            if self.pods.get(pod.key) is pod:
                del self.pods[pod.key]
        self.used_ips.discard(pod.ip)

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
        grace = float(body["metadata"].get("deletionGracePeriodSeconds") or 0)
        if pod is not None:
            for c in pod.containers:
                self.kill(c, grace=min(grace, 30.0))
            self.used_ips.discard(pod.ip)
        try:
            # As a kubelet does: the final delete once the containers are gone; the object
            # stays until the finalizer goes too, which only this runner removes.
            self.core.delete_namespaced_pod(
                body["metadata"]["name"],
                body["metadata"]["namespace"],
                body=client.V1DeleteOptions(
                    grace_period_seconds=0,
                    preconditions=client.V1Preconditions(uid=body["metadata"]["uid"]),
                ),
            )
            self.release(body)
            log.info("stopped and removed %s", key)
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("cannot delete %s: %s %s", key, err.status, err.reason)

    def claim(self, body: dict[str, Any]) -> bool:
        """Put FINALIZER on a pod about to be run; False when the pod is already gone."""
        meta = body["metadata"]
        if FINALIZER in (meta.get("finalizers") or []):
            return True
        try:
            # Strategic merge: finalizers merge as a set, so the job controller's stay.
            self.core.patch_namespaced_pod(
                meta["name"], meta["namespace"], {"metadata": {"finalizers": [FINALIZER]}}
            )
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    def release(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with contextlib.suppress(ApiException):
            self.core.patch_namespaced_pod(
                meta["name"],
                meta["namespace"],
                {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}},
            )

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
                w = watch.Watch()
                for event in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    label_selector=f"{LABEL}=true",
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    body = self.api_client.sanitize_for_serialization(event["object"])
                    version = body["metadata"].get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        self.handle(event["type"], body)
            except Exception as err:
                if not (isinstance(err, ApiException) and err.status == 410):
                    log.warning("pod watch interrupted: %s; listing again", err)
                    time.sleep(0.5)
                version = None

    def relist(self) -> str:
        listed = self.core.list_pod_for_all_namespaces(
            label_selector=f"{LABEL}=true", _request_timeout=90
        )
        bodies = [self.api_client.sanitize_for_serialization(p) for p in listed.items]
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
        return str(listed.metadata.resource_version)

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
            threading.Thread(target=self.terminate, args=(body,), daemon=True).start()
            return
        key = f"{meta['namespace']}/{meta['name']}"
        with self.lock:
            known = key in self.pods
        if not spec.get("nodeName"):
            return
        if not known and phase in ("Succeeded", "Failed"):
            return
        self.admit(body)

    def run(self) -> None:
        threading.Thread(target=self.watch_pods, daemon=True).start()
        while not self.stopping.is_set():
            with self.lock:
                pods = list(self.pods.values())
            for pod in pods:
                try:
                    self.step(pod)
                    self.publish(pod)
                except Exception:
                    log.exception("pod %s", pod.key)
            time.sleep(TICK)
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            for c in pod.containers:
                self.kill(c, grace=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--state", type=Path, required=True, help="folder for pod work dirs and logs"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = PodRunner(args.kubeconfig, args.state, Path(sys.executable).parent)
    signal.signal(signal.SIGTERM, lambda *_: runner.stopping.set())
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

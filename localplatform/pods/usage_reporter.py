"""What kwok's kubelet resource metrics read for local pods: each running container's CPU
and memory, measured from /proc and written as the pod's usage annotations
(usage.CPU_ANNOTATION + container) when they moved noticeably."""

from __future__ import annotations

import logging

from kubernetes.client.rest import ApiException

from maestro.localplatform.pods import usage
from maestro.localplatform.pods.api import PodApi
from maestro.localplatform.pods.processes import LocalPod

log = logging.getLogger("pod-runner")


class UsageReporter:
    def __init__(self, api: PodApi) -> None:
        self.api = api
        # Per (pod uid, container): the main pid and the usage measured last, and when.
        self.seen: dict[tuple[str, str], tuple[int, usage.Sample, float]] = {}
        # Per pod uid: the usage annotations written last.
        self.written: dict[str, dict[str, str]] = {}

    def measure(self, pods: list[LocalPod], at: float) -> None:
        """Measure each running container's CPU and memory and write what moved
        noticeably as the pod's usage annotations (usage.CPU_ANNOTATION + container)."""
        running: dict[tuple[str, str], int] = {}
        by_uid = {pod.uid: pod for pod in pods}
        for pod in pods:
            for c in pod.containers:
                proc = c.proc  # the main loop may replace it meanwhile
                if not pod.stopping and proc is not None and proc.returncode is None:
                    running[(pod.uid, c.name)] = proc.pid
        samples = usage.sample_groups(set(running.values()))
        seen: dict[tuple[str, str], tuple[int, usage.Sample, float]] = {}
        measured: dict[str, dict[str, str]] = {}
        for (uid, name), pid in running.items():
            sample = samples.get(pid)
            if sample is None:
                continue
            values = measured.setdefault(uid, {})
            values[usage.MEMORY_ANNOTATION + name] = usage.memory_quantity(sample.rss_bytes)
            before = self.seen.get((uid, name))
            if before is not None and before[0] == pid:
                values[usage.CPU_ANNOTATION + name] = usage.cpu_quantity(
                    usage.cores(before[1], sample, at - before[2])
                )
            seen[(uid, name)] = (pid, sample, at)
        self.seen = seen
        for uid, values in measured.items():
            pod = by_uid[uid]
            written = self.written.get(uid)
            if written is None:  # a runner before this one may have written some
                annotations = pod.body["metadata"].get("annotations") or {}
                written = {k: v for k, v in annotations.items() if k in values}
            changed = usage.annotations_to_write(written, values)
            if changed:
                try:
                    self.api.annotate(pod.namespace, pod.name, changed)
                    written = {**written, **changed}
                except ApiException as err:
                    if err.status != 404:
                        log.warning("usage of %s not written: %s", pod.key, err.reason)
            self.written[uid] = written
        for uid in set(self.written) - set(measured):
            del self.written[uid]

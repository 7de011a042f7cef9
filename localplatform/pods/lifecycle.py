"""What the kubelet decides about a container's life, as pure functions of the pod and of
the times the caller passes: the crash-loop back-off before a restart and the grace period
between SIGTERM and SIGKILL (the termination message is `termination`'s).

Back-off, as the kubelet's (its flowcontrol.Backoff, keyed by container): a container that
exits is restarted at once the first time; from then on each restart waits a back-off
counted from the moment the container exited, 10 s, doubled at each restart up to 5 minutes.
A container that ran 10 minutes before exiting starts over (restarted at once, then 10 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INITIAL_BACK_OFF = 10.0  # kubelet: initialCrashLoopBackOff
MAX_BACK_OFF = 300.0  # kubelet: MaxContainerBackOff
BACK_OFF_RESET = 600.0  # kubelet: a crash 10 minutes after the last restart starts over

DEFAULT_GRACE = 30.0  # the API server's default terminationGracePeriodSeconds
MINIMUM_GRACE = 2.0  # kubelet: minimumGracePeriodInSeconds, even for a grace period of 0


@dataclass(frozen=True)
class BackOff:
    """One container's back-off: the delay its next restart waits (None before its first
    restart) and when that delay was set (the last restart, on the caller's clock)."""

    delay: float | None = None
    updated: float = 0.0


def _expired(b: BackOff, finished: float) -> bool:
    return b.delay is None or finished - b.updated > BACK_OFF_RESET


def in_back_off(b: BackOff, finished: float, now: float) -> bool:
    """Whether a container that exited at `finished` must still wait at `now`."""
    if _expired(b, finished):
        return False
    assert b.delay is not None
    return now - finished < b.delay


def restarted(b: BackOff, finished: float, now: float) -> BackOff:
    """The back-off after restarting, at `now`, a container that exited at `finished`."""
    if _expired(b, finished) or b.delay is None:
        return BackOff(INITIAL_BACK_OFF, now)
    return BackOff(min(2 * b.delay, MAX_BACK_OFF), now)


def restart_at(b: BackOff, finished: float) -> float:
    """When a container that exited at `finished` may be restarted."""
    if _expired(b, finished):
        return finished
    assert b.delay is not None
    return finished + b.delay


def go_duration(seconds: float) -> str:
    """A whole number of seconds as Go prints a time.Duration: 10s, 1m20s, 5m0s."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def termination_grace(pod: Mapping[str, Any]) -> float:
    """Seconds between SIGTERM and SIGKILL when the pod's containers are stopped: the
    deletion's grace period (the API server records it in deletionGracePeriodSeconds: the
    delete request's gracePeriodSeconds, else the pod's terminationGracePeriodSeconds), else
    the pod's terminationGracePeriodSeconds, else 30; never under the kubelet's 2 s."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        grace = DEFAULT_GRACE
    return max(float(grace), MINIMUM_GRACE)


def pre_stop_sleep(container: Mapping[str, Any]) -> float:
    """Seconds of the container's `lifecycle.preStop.sleep` hook, 0 without one. (The runner
    runs only this kind of hook: Maestro's serving pods use it to keep answering while
    Services drop the terminating pod from their endpoints; exec and httpGet hooks are not
    run.)"""
    hook = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    return max(float(hook.get("seconds") or 0), 0.0)


def stop_times(pre_stop: float, grace: float) -> tuple[float, float]:
    """Seconds from the deletion to SIGTERM and to SIGKILL, as the kubelet's killContainer
    counts them: the preStop hook runs first, inside the grace period, and what is left of
    it (never under 2 s) separates SIGTERM from SIGKILL."""
    term = min(pre_stop, grace)
    return term, term + max(grace - term, MINIMUM_GRACE)

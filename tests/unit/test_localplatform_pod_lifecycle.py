"""What the local pod runner decides as the kubelet does: the crash-loop back-off between
restarts and the grace period between SIGTERM and SIGKILL."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.localplatform.pods.lifecycle import (
    BackOff,
    go_duration,
    in_back_off,
    pre_stop_sleep,
    restart_at,
    restarted,
    stop_times,
    termination_grace,
)

pytestmark = pytest.mark.unit


def waits(runs: list[float]) -> list[float]:
    """The seconds each restart waited, for a container whose successive runs lasted
    `runs` seconds and that the runner restarts as soon as it may."""
    b, t, out = BackOff(), 0.0, []
    for ran in runs:
        finished = t + ran
        start = restart_at(b, finished)
        assert not in_back_off(b, finished, start)
        assert start == finished or in_back_off(b, finished, start - 0.001)
        out.append(start - finished)
        b, t = restarted(b, finished, start), start
    return out


def test_a_crash_loop_restarts_at_once_then_waits_10s_doubling_up_to_5_minutes() -> None:
    assert waits([1.0] * 9) == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_a_container_that_ran_10_minutes_starts_the_back_off_over() -> None:
    assert waits([1, 1, 1, 601, 1, 1]) == [0, 10, 20, 0, 10, 20]


def test_ten_minutes_exactly_is_not_enough() -> None:
    # The kubelet resets only past 2 x 5 minutes since the last restart.
    assert waits([1, 1, 600]) == [0, 10, 20]


def test_the_back_off_counts_from_the_exit_not_from_the_start() -> None:
    b = restarted(BackOff(), finished=0, now=0)  # restarted once: the next waits 10 s
    assert in_back_off(b, finished=100, now=109.9)
    assert not in_back_off(b, finished=100, now=110)
    assert restart_at(b, finished=100) == 110


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10, "10s"), (40, "40s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s")],
)
def test_back_off_is_shown_as_the_kubelet_prints_it(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def pod(deletion: int | None = None, spec: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if deletion is not None:
        meta["deletionGracePeriodSeconds"] = deletion
    body: dict[str, Any] = {"metadata": meta, "spec": {"containers": []}}
    if spec is not None:
        body["spec"]["terminationGracePeriodSeconds"] = spec
    return body


@pytest.mark.parametrize(
    ("body", "grace"),
    [
        pytest.param(pod(), 30.0, id="api-default"),
        pytest.param(pod(spec=60), 60.0, id="pod-spec"),
        pytest.param(pod(deletion=60, spec=60), 60.0, id="deletion-default-is-the-spec"),
        pytest.param(pod(deletion=5, spec=60), 5.0, id="deletion-grace-wins"),
        pytest.param(pod(deletion=120, spec=30), 120.0, id="deletion-may-be-longer"),
        pytest.param(pod(deletion=0, spec=30), 2.0, id="force-delete-gets-2s"),
        pytest.param(pod(spec=0), 2.0, id="spec-zero-gets-2s"),
    ],
)
def test_termination_grace(body: dict[str, Any], grace: float) -> None:
    assert termination_grace(body) == grace


@pytest.mark.parametrize(
    ("container", "seconds"),
    [
        ({"name": "c"}, 0.0),
        ({"lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}, 5.0),
        ({"lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}, 0.0),
        ({"lifecycle": {"postStart": {"sleep": {"seconds": 5}}}}, 0.0),
    ],
)
def test_only_a_pre_stop_sleep_hook_delays_sigterm(
    container: dict[str, Any], seconds: float
) -> None:
    assert pre_stop_sleep(container) == seconds


@pytest.mark.parametrize(
    ("pre_stop", "grace", "times"),
    [
        (0, 30, (0, 30)),  # no hook: SIGTERM at once, SIGKILL after the grace period
        (5, 30, (5, 30)),  # the hook runs inside the grace period
        (5, 6, (5, 7)),  # what is left of it is never under 2 s
        (10, 3, (3, 5)),  # a hook longer than the grace period is cut at it
    ],
)
def test_stop_times_count_the_hook_inside_the_grace_period(
    pre_stop: float, grace: float, times: tuple[float, float]
) -> None:
    assert stop_times(pre_stop, grace) == times

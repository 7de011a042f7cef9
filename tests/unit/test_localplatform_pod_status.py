"""The local pod runner's pod status, built from its containers' process state: container
states by restart policy, the last state and back-off of a crash-looping container, the
pod phase, readiness and conditions' transition times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from maestro.localplatform.pods.status import (
    ContainerSnapshot,
    Termination,
    pod_status,
    should_restart,
    stopped_status,
)

pytestmark = pytest.mark.unit

IP = "10.244.0.7"


def status(*containers: ContainerSnapshot, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("now", "2026-01-01T00:00:00Z")
    return pod_status(containers, ip=IP, start_time="2026-01-01T00:00:00Z", **kwargs)


def running(name: str = "main", *, ready: bool = False, pid: int = 4242) -> ContainerSnapshot:
    return ContainerSnapshot(name, pid=pid, started_at="T0", ready=ready)


def exited(name: str = "main", code: int = 0, **kwargs: Any) -> ContainerSnapshot:
    return ContainerSnapshot(name, started_at="T0", exit_code=code, finished_at="T1", **kwargs)


def condition(out: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in out["conditions"] if c["type"] == kind)
    return found


@dataclass(frozen=True)
class Expected:
    state: str  # running, waiting or terminated
    reason: str | None  # the state's
    phase: str
    ready: bool = False  # the pod's Ready condition


def case(
    name: str, c: ContainerSnapshot, policy: str, expected: Expected, deadline: bool = False
) -> Any:
    return pytest.param(c, policy, deadline, expected, id=name)


START_ERROR = "StartError: [Errno 2] No such file or directory: 'nope'"
CONFIG_ERROR = "CreateContainerConfigError: secret ns/db has no key 'url'"
ONE_CONTAINER = [
    case("running-ready", running(ready=True), "Always",
         Expected("running", None, "Running", ready=True)),
    case("running-unready", running(), "Always", Expected("running", None, "Running")),
    case("not-started", ContainerSnapshot("main"), "Always",
         Expected("waiting", "ContainerCreating", "Pending")),
    case("exit-0-never", exited(code=0), "Never", Expected("terminated", "Completed", "Succeeded")),
    case("exit-3-never", exited(code=3), "Never", Expected("terminated", "Error", "Failed")),
    case("exit-0-onfailure", exited(code=0), "OnFailure",
         Expected("terminated", "Completed", "Succeeded")),
    case("exit-1-onfailure", exited(code=1, back_off=10), "OnFailure",
         Expected("waiting", "CrashLoopBackOff", "Running")),
    case("exit-0-always", exited(code=0, back_off=10), "Always",
         Expected("waiting", "CrashLoopBackOff", "Running")),
    case("exit-137-always", exited(code=137, back_off=20), "Always",
         Expected("waiting", "CrashLoopBackOff", "Running")),
    case("restart-due-now", exited(code=1), "Always",
         Expected("waiting", "ContainerCreating", "Running")),
    case("deadline-stops-restarts", exited(code=137), "Always",
         Expected("terminated", "Error", "Failed"), deadline=True),
    case("deadline-while-running", running(ready=True), "Always",
         Expected("running", None, "Failed"), deadline=True),
    case("ready-flag-without-process", exited(code=0, ready=True), "Never",
         Expected("terminated", "Completed", "Succeeded")),
    case("config-error", ContainerSnapshot("main", error=CONFIG_ERROR), "Always",
         Expected("waiting", "CreateContainerConfigError", "Pending")),
    case("start-error-never", exited(code=128, error=START_ERROR), "Never",
         Expected("terminated", "StartError", "Failed")),
    case("start-error-always", exited(code=128, error=START_ERROR, back_off=10), "Always",
         Expected("waiting", "CrashLoopBackOff", "Running")),
    case("config-error-on-restart", exited(code=1, error=CONFIG_ERROR), "Always",
         Expected("waiting", "CreateContainerConfigError", "Running")),
]  # fmt: skip


@pytest.mark.parametrize(("container", "policy", "deadline", "expected"), ONE_CONTAINER)
def test_one_container(
    container: ContainerSnapshot, policy: str, deadline: bool, expected: Expected
) -> None:
    out = status(container, restart_policy=policy, deadline_exceeded=deadline)
    (cs,) = out["containerStatuses"]
    assert list(cs["state"]) == [expected.state]
    assert cs["state"][expected.state].get("reason") == expected.reason
    assert out["phase"] == expected.phase
    assert out.get("reason") == ("DeadlineExceeded" if deadline else None)
    for kind in ("Ready", "ContainersReady"):
        assert condition(out, kind)["status"] == str(expected.ready)
    running_now = container.pid is not None
    assert cs["started"] is running_now
    assert cs["ready"] is (container.ready and running_now)
    assert cs["containerID"] == (f"local://{container.pid}" if running_now else "")


def test_a_terminated_container_reports_its_exit_and_times() -> None:
    (cs,) = status(exited(code=3), restart_policy="Never")["containerStatuses"]
    assert cs["state"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "startedAt": "T0",
        "finishedAt": "T1",
    }


def test_a_crash_looping_container_says_its_back_off_and_how_it_exited() -> None:
    c = exited(code=2, back_off=40, restarts=3, message="cannot load model")
    (cs,) = status(c, restart_policy="OnFailure")["containerStatuses"]
    assert cs["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": "back-off 40s restarting failed container=main",
    }
    assert cs["lastState"]["terminated"] == {
        "exitCode": 2,
        "reason": "Error",
        "startedAt": "T0",
        "finishedAt": "T1",
        "message": "cannot load model",
    }
    assert cs["restartCount"] == 3


def test_a_restarted_container_shows_the_run_before_as_its_last_state() -> None:
    before = Termination(1, "T0", "T1", "boom")
    c = ContainerSnapshot("main", pid=7, started_at="T2", restarts=1, previous=before)
    (cs,) = status(c)["containerStatuses"]
    assert cs["state"] == {"running": {"startedAt": "T2"}}
    assert cs["lastState"] == {
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "startedAt": "T0",
            "finishedAt": "T1",
            "message": "boom",
        }
    }


def test_a_container_that_ended_for_good_shows_its_end_and_the_run_before() -> None:
    before = Termination(1, "T0", "T1")
    c = exited(code=3, restarts=1, previous=before, message="bad input")
    (cs,) = status(c, restart_policy="Never")["containerStatuses"]
    assert cs["state"]["terminated"]["message"] == "bad input"
    assert cs["lastState"]["terminated"]["finishedAt"] == "T1"


def test_a_container_that_never_ran_has_no_last_state() -> None:
    for c in (ContainerSnapshot("main"), running()):
        (cs,) = status(c)["containerStatuses"]
        assert cs["lastState"] == {}


def test_a_config_error_splits_into_reason_and_message() -> None:
    (cs,) = status(ContainerSnapshot("main", error=CONFIG_ERROR))["containerStatuses"]
    assert cs["state"]["waiting"] == {
        "reason": "CreateContainerConfigError",
        "message": "secret ns/db has no key 'url'",
    }


def test_restarts_and_image_are_reported() -> None:
    c = ContainerSnapshot("main", image="maestro:1", pid=7, restarts=3)
    (cs,) = status(c)["containerStatuses"]
    assert (cs["name"], cs["image"], cs["restartCount"]) == ("main", "maestro:1", 3)


# (containers, restart policy) -> pod phase, pod Ready
SEVERAL_CONTAINERS = [
    pytest.param((), "Always", "Pending", False, id="no-containers"),
    pytest.param((running("a", ready=True), running("b", ready=True)), "Always", "Running", True,
                 id="all-ready"),
    pytest.param((running("a", ready=True), running("b")), "Always", "Running", False,
                 id="one-unready"),
    pytest.param((running("a", ready=True), ContainerSnapshot("b")), "Always", "Running", False,
                 id="one-not-started"),
    pytest.param((exited("a", 0), running("b", ready=True)), "Never", "Running", False,
                 id="one-done-one-running"),
    pytest.param((exited("a", 0), exited("b", 0)), "Never", "Succeeded", False, id="all-done"),
    pytest.param((exited("a", 0), exited("b", 1)), "Never", "Failed", False, id="one-failed"),
    pytest.param((exited("a", 0), ContainerSnapshot("b")), "Never", "Running", False,
                 id="one-done-one-creating"),
    pytest.param((ContainerSnapshot("a"), ContainerSnapshot("b")), "Never", "Pending", False,
                 id="none-started"),
]  # fmt: skip


@pytest.mark.parametrize(("containers", "policy", "phase", "ready"), SEVERAL_CONTAINERS)
def test_pod_phase_and_readiness(
    containers: tuple[ContainerSnapshot, ...], policy: str, phase: str, ready: bool
) -> None:
    out = status(*containers, restart_policy=policy)
    assert out["phase"] == phase
    assert condition(out, "Ready")["status"] == str(ready)
    assert [c["name"] for c in out["containerStatuses"]] == [c.name for c in containers]


def test_the_pod_carries_its_address_start_time_and_qos_class() -> None:
    out = status(running(), qos_class="Burstable")
    assert (out["podIP"], out["hostIP"]) == (IP, IP)
    assert out["podIPs"] == out["hostIPs"] == [{"ip": IP}]
    assert out["startTime"] == "2026-01-01T00:00:00Z"
    assert out["qosClass"] == "Burstable"
    assert status(running())["qosClass"] == "BestEffort"
    assert {c["type"]: c["status"] for c in out["conditions"]}.keys() == {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }


def test_conditions_keep_their_transition_time_until_they_change() -> None:
    first = status(running(ready=False), now="T1")
    again = status(running(ready=False), previous=first, now="T2")
    # Equal statuses are what lets the runner skip writing an unchanged one.
    assert again == first
    ready = status(running(ready=True), previous=again, now="T3")
    assert condition(ready, "Ready")["lastTransitionTime"] == "T3"
    assert condition(ready, "ContainersReady")["lastTransitionTime"] == "T3"
    assert condition(ready, "PodScheduled")["lastTransitionTime"] == "T1"


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        pytest.param("Always", 0, True, id="always-success"),
        pytest.param("Always", 1, True, id="always-failure"),
        pytest.param("OnFailure", 0, False, id="onfailure-success"),
        pytest.param("OnFailure", 2, True, id="onfailure-failure"),
        pytest.param("Never", 1, False, id="never-failure"),
        pytest.param("Never", 0, False, id="never-success"),
    ],
)
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


@pytest.mark.parametrize(
    ("containers", "phase"),
    [
        pytest.param((exited(code=0),), "Succeeded", id="all-exited-0"),
        pytest.param((exited(code=143),), "Failed", id="sigterm"),
        pytest.param((exited("a", 0), exited("b", 137)), "Failed", id="one-killed"),
        pytest.param((ContainerSnapshot("main"),), "Failed", id="never-started"),
    ],
)
def test_a_stopped_pod_ends_in_a_terminal_phase_whatever_its_restart_policy(
    containers: tuple[ContainerSnapshot, ...], phase: str
) -> None:
    out = status(*containers, restart_policy="Always", stopped=True)
    assert out["phase"] == phase and "reason" not in out
    assert condition(out, "Ready")["status"] == "False"
    for c, cs in zip(containers, out["containerStatuses"], strict=True):
        if c.exit_code is not None:
            assert cs["state"]["terminated"]["exitCode"] == c.exit_code


def test_a_deleted_pod_of_an_earlier_runner_is_failed_with_its_containers_unknown() -> None:
    before = status(running("a", ready=True))
    final = stopped_status(before, now="T9")
    assert final["phase"] == "Failed"
    (a,) = final["containerStatuses"]
    assert a["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert a["state"]["terminated"]["exitCode"] == 137 and not a["ready"]
    assert condition(before, "Ready")["status"] == "True"
    assert condition(final, "Ready")["status"] == "False"
    assert condition(final, "Ready")["lastTransitionTime"] == "T9"
    # A container known to have ended keeps its state; a finished pod stays as it is.
    before = status(running("a"), exited("b", code=0), restart_policy="Never")
    b = stopped_status(before, now="T9")["containerStatuses"][1]
    assert b["state"] == before["containerStatuses"][1]["state"]
    done = {**before, "phase": "Succeeded"}
    assert stopped_status(done, now="T9") == done


# --- init containers -------------------------------------------------------------------------


def test_a_pod_initializing_is_pending_and_its_containers_wait_for_the_init_ones() -> None:
    out = status(
        ContainerSnapshot("server"),
        init_containers=[running("vault-agent-init")],
        initialized=False,
    )
    assert out["phase"] == "Pending"
    assert condition(out, "Initialized")["status"] == "False"
    assert condition(out, "Ready")["status"] == "False"
    assert out["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert out["initContainerStatuses"][0]["state"] == {"running": {"startedAt": "T0"}}


def test_a_failed_init_container_crash_loops_and_keeps_the_pod_pending() -> None:
    failing = exited("vault-agent-init", 1, restarts=2, back_off=20.0)
    out = status(ContainerSnapshot("server"), init_containers=[failing], initialized=False)
    assert out["phase"] == "Pending"
    init = out["initContainerStatuses"][0]
    assert init["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert init["lastState"]["terminated"]["exitCode"] == 1
    assert init["restartCount"] == 2


def test_an_init_container_failing_under_restart_policy_never_fails_the_pod() -> None:
    out = status(
        ContainerSnapshot("main"),
        init_containers=[exited("init", 1)],
        initialized=False,
        restart_policy="Never",
    )
    assert out["phase"] == "Failed"


def test_completed_init_containers_stay_terminated_once_the_pod_runs() -> None:
    out = status(
        running("server", ready=True),
        init_containers=[exited("vault-agent-init", 0)],
        initialized=True,
    )
    assert out["phase"] == "Running"
    assert condition(out, "Initialized")["status"] == "True"
    assert condition(out, "Ready")["status"] == "True"
    assert out["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_a_pod_without_init_containers_has_no_init_statuses() -> None:
    assert "initContainerStatuses" not in status(running("main"))

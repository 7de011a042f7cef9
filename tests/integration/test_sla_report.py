"""`maestro sla report` against a real Prometheus (Debian's), on 31 days of known traffic.

The series are written as OpenMetrics text with known request counts per 5-minute step
(two revisions of `iris` in namespace `ml`: 200, 400, 500 and 503 over HTTP, 200 and 503
over gRPC, the second revision starting 10 days before the end, the first one restarting
15 days before it, so its counters reset) and a known latency
distribution over the request-duration histogram's buckets, plus decoys the report must
leave out (the same name in another namespace, another deployment). promtool backfills them
into a temporary TSDB; a `prometheus` of this test serves it on a free loopback port.

Each figure the command prints (`--format json`, run as a subprocess) is compared with a
PromQL query this test makes itself at the same evaluation time, and with the value known
from the generated counts, within 0.1%.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maestro.monitoring.metric_names import REQUEST_DURATION_BUCKETS

pytestmark = pytest.mark.services

STEP = 300  # seconds between samples
DAY = 86400
SPAN_DAYS = 31  # of data, ending at END
WINDOW = "30d"
WINDOW_SECONDS = 30 * DAY
CANARY_DAYS = 10  # v2 serves for the last 10 days only
RESTART_DAYS = 15  # v1's server restarts this long before the end: its counters reset
OBJECTIVE = 99.8
LATENCY_THRESHOLD_MS = 100
LATENCY_OBJECTIVE = 99.5
TOLERANCE = 1e-3  # relative: 0.1%

NAMESPACE = "ml"
DEPLOYMENT = "iris"

# Requests per step of each series: (namespace, deployment, revision, protocol, code).
REQUESTS_PER_STEP = {
    (NAMESPACE, DEPLOYMENT, "v1", "v2", "200"): 1995,
    (NAMESPACE, DEPLOYMENT, "v1", "v2", "400"): 3,  # the caller's fault: not an error
    (NAMESPACE, DEPLOYMENT, "v1", "v2", "500"): 1,
    (NAMESPACE, DEPLOYMENT, "v1", "v2", "503"): 1,
    (NAMESPACE, DEPLOYMENT, "v2", "grpc", "200"): 998,
    (NAMESPACE, DEPLOYMENT, "v2", "grpc", "503"): 2,
    # Decoys: the same name in another namespace, and another deployment.
    ("staging", DEPLOYMENT, "v9", "v2", "500"): 50,
    (NAMESPACE, "fraud", "v1", "v2", "200"): 700,
    # A deployment whose series exist but served nothing.
    (NAMESPACE, "idle", "v1", "v2", "200"): 0,
}
# Observations per step by the bucket bound they fall under (not cumulative); each
# revision observes as many requests as it counts above.
LATENCY_PER_STEP = {
    "v1": {0.005: 600, 0.01: 800, 0.025: 400, 0.05: 140, 0.1: 50, 0.25: 8, 0.5: 2},
    "v2": {0.025: 300, 0.05: 500, 0.1: 150, 0.25: 40, 0.5: 8, 1.0: 2},
}
MIDPOINT_SECONDS = {"v1": 0.009, "v2": 0.04}  # `_sum` grows by count x this


def steps_in_window(revision: str) -> int:
    """Steps of increase inside the window: samples from END - 30d (inclusive) to END."""
    return (CANARY_DAYS if revision == "v2" else 30) * DAY // STEP


@dataclass(frozen=True)
class Known:
    requests: float
    errors: float
    revision_requests: dict[str, float]
    revision_errors: dict[str, float]
    buckets: dict[float, float]  # cumulative observations at each bound, over the window
    count: float


def known() -> Known:
    requests = errors = 0.0
    revision_requests: dict[str, float] = {}
    revision_errors: dict[str, float] = {}
    for (ns, md, revision, _protocol, code), per_step in REQUESTS_PER_STEP.items():
        if (ns, md) != (NAMESPACE, DEPLOYMENT):
            continue
        n = per_step * steps_in_window(revision)
        requests += n
        revision_requests[revision] = revision_requests.get(revision, 0) + n
        if code.startswith("5"):
            errors += n
            revision_errors[revision] = revision_errors.get(revision, 0) + n
    buckets = {}
    for bound in REQUEST_DURATION_BUCKETS:
        buckets[bound] = float(
            sum(
                sum(c for b, c in per_step.items() if b <= bound) * steps_in_window(revision)
                for revision, per_step in LATENCY_PER_STEP.items()
            )
        )
    count = float(sum(sum(d.values()) * steps_in_window(r) for r, d in LATENCY_PER_STEP.items()))
    return Known(requests, errors, revision_requests, revision_errors, buckets, count)


def known_quantile(q: float, k: Known) -> float:
    """The q-quantile of the known histogram, by linear interpolation within the bucket
    where the rank falls (the estimate histogram_quantile makes), written out here."""
    rank = q * k.count
    lower, below = 0.0, 0.0
    for bound in REQUEST_DURATION_BUCKETS:
        cumulative = k.buckets[bound]
        if cumulative >= rank:
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    return REQUEST_DURATION_BUCKETS[-1]


# --- the OpenMetrics file ------------------------------------------------------------------


def labels(**pairs: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def openmetrics(end: int) -> Iterator[str]:
    """Every series, one after the other, its samples in time order (what promtool wants)."""
    start = end - SPAN_DAYS * DAY
    canary_start = end - CANARY_DAYS * DAY

    def times(revision: str) -> range:
        return range(canary_start if revision == "v2" else start, end + 1, STEP)

    restart = (SPAN_DAYS - RESTART_DAYS) * DAY // STEP

    def steps(revision: str, i: int) -> int:
        """Steps counted by the sample `i` of a revision's series: v1's counters start again
        from 0 at its restart, which has counted one step when it is first scraped."""
        return i - restart + 1 if revision == "v1" and i >= restart else i

    yield "# TYPE maestro_requests counter\n"
    for (ns, md, revision, protocol, code), per_step in REQUESTS_PER_STEP.items():
        series = "maestro_requests_total" + labels(
            deployment=md,
            revision=revision,
            model=md,
            model_version=revision[1:],
            code=code,
            protocol=protocol,
            namespace=ns,
            pod=f"{md}-{revision}-0",
        )
        # Counters start at 0, as a new pod exports them.
        for i, t in enumerate(times(revision)):
            yield f"{series} {steps(revision, i) * per_step} {t}\n"
    yield "# TYPE maestro_request_duration_seconds histogram\n"
    for revision, per_step in LATENCY_PER_STEP.items():
        common = {
            "deployment": DEPLOYMENT,
            "revision": revision,
            "model": DEPLOYMENT,
            "model_version": revision[1:],
            "namespace": NAMESPACE,
            "pod": f"{DEPLOYMENT}-{revision}-0",
        }
        total = sum(per_step.values())
        bounds = [*(repr(float(b)) for b in REQUEST_DURATION_BUCKETS), "+Inf"]
        for le in bounds:
            bound = math.inf if le == "+Inf" else float(le)
            inc = sum(c for b, c in per_step.items() if b <= bound)
            series = "maestro_request_duration_seconds_bucket" + labels(**common, le=le)
            for i, t in enumerate(times(revision)):
                yield f"{series} {steps(revision, i) * inc} {t}\n"
        count = "maestro_request_duration_seconds_count" + labels(**common)
        for i, t in enumerate(times(revision)):
            yield f"{count} {steps(revision, i) * total} {t}\n"
        total_seconds = "maestro_request_duration_seconds_sum" + labels(**common)
        mean = MIDPOINT_SECONDS[revision]
        for i, t in enumerate(times(revision)):
            yield f"{total_seconds} {steps(revision, i) * total * mean:.6f} {t}\n"
    yield "# EOF\n"


# --- Prometheus ----------------------------------------------------------------------------


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is missing: install Debian's prometheus package with `make services`"
        )
    return path


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 9090:  # the local platform's Prometheus
            return port


@dataclass(frozen=True)
class Served:
    url: str
    end: int

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, "time": str(self.end if at is None else at)}
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float:
        (sample,) = self.query(promql)
        return float(sample["value"][1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    prometheus_bin, promtool = binary("prometheus"), binary("promtool")
    home = tmp_path_factory.mktemp("sla-prometheus")
    # The data ends on a step a few minutes before now: Prometheus serves the past.
    end = (int(time.time()) // STEP) * STEP - 2 * STEP
    source = home / "series.om"
    with source.open("w") as out:
        out.writelines(openmetrics(end))
    data = home / "data"
    started = time.monotonic()
    backfill = subprocess.run(
        # One pass over the file per block: 486h blocks (the largest promtool allows below
        # 31 days) instead of the default 2h keep it to three.
        [
            "nice",
            "-n",
            "10",
            promtool,
            "tsdb",
            "create-blocks-from",
            "--max-block-duration=486h",
            "openmetrics",
            "--quiet",
            str(source),
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    print(f"\nbackfill: {time.monotonic() - started:.1f}s")
    source.unlink()
    config = home / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=400d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"prometheus did not become ready on {url}:\n"
                    + (home / "prometheus.log").read_text()
                )
            time.sleep(0.2)
        yield Served(url, end)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- the command ---------------------------------------------------------------------------


def maestro(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("maestro")
    assert command.is_file(), f"{command} is missing: run `make install`"
    return subprocess.run(
        ["nice", "-n", "10", str(command), "sla", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def report_args(served: Served, *more: str) -> list[str]:
    return [
        "--deployment",
        DEPLOYMENT,
        "--namespace",
        NAMESPACE,
        "--window",
        WINDOW,
        "--end",
        str(served.end),
        "--prometheus",
        served.url,
        "--objective",
        str(OBJECTIVE),
        "--latency-threshold-ms",
        str(LATENCY_THRESHOLD_MS),
        "--latency-objective",
        str(LATENCY_OBJECTIVE),
        *more,
    ]


@pytest.fixture(scope="module")
def json_report(prometheus: Served) -> dict[str, Any]:
    started = time.monotonic()
    proc = maestro(*report_args(prometheus, "--format", "json"))
    print(f"maestro sla report: {time.monotonic() - started:.1f}s")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


SEL = f'deployment="{DEPLOYMENT}",namespace="{NAMESPACE}"'


def direct_figures(served: Served) -> dict[str, float]:
    """The figures from PromQL written out here, evaluated at the same time."""
    w = WINDOW
    requests = served.value(f"sum(increase(maestro_requests_total{{{SEL}}}[{w}]))")
    errors = served.value(f'sum(increase(maestro_requests_total{{{SEL},code=~"5.."}}[{w}]))')
    by_le = f"sum by (le) (increase(maestro_request_duration_seconds_bucket{{{SEL}}}[{w}]))"
    within = served.value(
        f'sum(increase(maestro_request_duration_seconds_bucket{{{SEL},le="0.1"}}[{w}]))'
    )
    timed = served.value(f"sum(increase(maestro_request_duration_seconds_count{{{SEL}}}[{w}]))")
    return {
        "requests": requests,
        "errors": errors,
        "errorRate": errors / requests,
        "availability": 1 - errors / requests,
        "latencyP95Seconds": served.value(f"histogram_quantile(0.95, {by_le})"),
        "latencyP99Seconds": served.value(f"histogram_quantile(0.99, {by_le})"),
        "withinThreshold": within,
        "latencyShare": within / timed,
        "burnRate": (errors / requests) / (1 - OBJECTIVE / 100),
        "latencyBurnRate": (1 - within / timed) / (1 - LATENCY_OBJECTIVE / 100),
    }


def known_figures() -> dict[str, float]:
    k = known()
    within = k.buckets[LATENCY_THRESHOLD_MS / 1000]
    return {
        "requests": k.requests,
        "errors": k.errors,
        "errorRate": k.errors / k.requests,
        "availability": 1 - k.errors / k.requests,
        "latencyP95Seconds": known_quantile(0.95, k),
        "latencyP99Seconds": known_quantile(0.99, k),
        "withinThreshold": within,
        "latencyShare": within / k.count,
        "burnRate": (k.errors / k.requests) / (1 - OBJECTIVE / 100),
        "latencyBurnRate": (1 - within / k.count) / (1 - LATENCY_OBJECTIVE / 100),
    }


def reported_figures(report: dict[str, Any]) -> dict[str, float]:
    sli = report["latencySli"]
    return {
        "requests": report["requests"],
        "errors": report["errors"],
        "errorRate": report["errorRate"],
        "availability": report["availability"],
        "latencyP95Seconds": report["latencyP95Seconds"],
        "latencyP99Seconds": report["latencyP99Seconds"],
        "withinThreshold": sli["withinThreshold"],
        "latencyShare": sli["share"],
        "burnRate": report["errorBudget"]["burnRate"],
        "latencyBurnRate": sli["errorBudget"]["burnRate"],
    }


def test_every_figure_matches_direct_promql_and_the_known_traffic(
    prometheus: Served, json_report: dict[str, Any]
) -> None:
    reported = reported_figures(json_report)
    direct = direct_figures(prometheus)
    expected = known_figures()
    print(f"\n{'figure':<18} {'report':>16} {'PromQL':>16} {'known':>16} {'max rel diff':>12}")
    worst = 0.0
    for name, value in reported.items():
        diff = max(relative(value, direct[name]), relative(value, expected[name]))
        worst = max(worst, diff)
        print(
            f"{name:<18} {value:>16.8g} {direct[name]:>16.8g} {expected[name]:>16.8g} {diff:>12.2e}"
        )
    print(f"largest relative difference: {worst:.3e}")
    mismatched = {
        name: (value, direct[name], expected[name])
        for name, value in reported.items()
        if relative(value, direct[name]) > TOLERANCE or relative(value, expected[name]) > TOLERANCE
    }
    assert not mismatched, mismatched
    # The known traffic makes a report worth having: errors, and a budget partly spent; and
    # v1's counters did reset in the window (its restart), which increase() must see through.
    assert expected["errors"] > 0 and 0 < expected["burnRate"] < 1
    resets = f'sum(resets(maestro_requests_total{{{SEL},revision="v1",code="200"}}[{WINDOW}]))'
    assert prometheus.value(resets) == 1


def test_budget_and_revisions_follow_from_the_figures(json_report: dict[str, Any]) -> None:
    k = known()
    budget = json_report["errorBudget"]
    allowed = (1 - OBJECTIVE / 100) * k.requests
    assert relative(budget["allowedRequests"], allowed) < TOLERANCE
    assert relative(budget["consumed"], k.errors / allowed) < TOLERANCE
    assert relative(budget["left"], 1 - k.errors / allowed) < TOLERANCE
    assert relative(budget["leftRequests"], allowed - k.errors) < TOLERANCE
    assert budget["met"] is True
    revisions = {r["revision"]: r for r in json_report["revisions"]}
    assert set(revisions) == set(k.revision_requests)
    for name, r in revisions.items():
        assert relative(r["requests"], k.revision_requests[name]) < TOLERANCE
        assert relative(r["errors"], k.revision_errors[name]) < TOLERANCE
    assert json_report["noTraffic"] is False
    assert json_report["endUnix"] == json_report["endUnix"] // STEP * STEP


def test_text_and_html_show_the_figures(
    prometheus: Served, json_report: dict[str, Any], tmp_path: Path
) -> None:
    availability = f"{json_report['availability'] * 100:.4f}%"
    p99 = f"{json_report['latencyP99Seconds'] * 1000:.2f} ms"
    requests = f"{json_report['requests']:,.0f}"
    burn = f"{json_report['errorBudget']['burnRate']:.3f}x"
    text = maestro(*report_args(prometheus))
    assert text.returncode == 0, text.stderr
    for figure in (availability, p99, requests, burn, "v1", "v2"):
        assert figure in text.stdout, (figure, text.stdout)

    out = tmp_path / "report" / "iris.html"
    html = maestro(*report_args(prometheus, "--format", "html", "--output", str(out)))
    assert html.returncode == 0, html.stderr
    assert html.stdout == "" and str(out) in html.stderr
    page = out.read_text()
    for figure in (availability, p99, requests, burn):
        assert figure in page
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    # The queries are shown escaped: no raw quote or brace breaks the page.
    assert "code=~&quot;5..&quot;" in page


def test_the_default_objective_is_999_and_is_missed_here(prometheus: Served) -> None:
    args = report_args(prometheus, "--format", "json")
    i = args.index("--objective")
    del args[i : i + 2]
    proc = maestro(*args)
    assert proc.returncode == 0, proc.stderr
    budget = json.loads(proc.stdout)["errorBudget"]
    k = known()
    assert budget["objectivePercent"] == 99.9
    assert relative(budget["burnRate"], (k.errors / k.requests) / 0.001) < TOLERANCE
    assert budget["met"] is False and budget["left"] < 0


def test_the_prometheus_url_comes_from_the_environment(prometheus: Served) -> None:
    args = report_args(prometheus, "--format", "json")
    i = args.index("--prometheus")
    del args[i : i + 2]
    proc = maestro(*args, env={"MAESTRO_PROMETHEUS_URL": prometheus.url})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["requests"] == pytest.approx(known().requests, rel=TOLERANCE)


def test_a_name_in_two_namespaces_needs_namespace(prometheus: Served) -> None:
    args = report_args(prometheus, "--format", "json")
    i = args.index("--namespace")
    del args[i : i + 2]
    proc = maestro(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--namespace" in proc.stderr and "ml" in proc.stderr and "staging" in proc.stderr


@pytest.mark.parametrize(
    ("deployment", "says"), [("idle", "served no requests"), ("ghost", "check the deployment name")]
)
def test_no_traffic_is_exit_4_with_no_data(prometheus: Served, deployment: str, says: str) -> None:
    args = report_args(prometheus, "--format", "json")
    args[args.index("--deployment") + 1] = deployment
    proc = maestro(*args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert says in proc.stderr
    report = json.loads(proc.stdout)
    assert report["noTraffic"] is True
    assert report["availability"] is None and report["latencyP95Seconds"] is None
    assert report["errorBudget"]["burnRate"] is None


def test_unreachable_prometheus_is_exit_3() -> None:
    port = free_port()
    proc = maestro(
        "--deployment", DEPLOYMENT, "--window", WINDOW, "--prometheus", f"http://127.0.0.1:{port}"
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot reach Prometheus" in proc.stderr and "--prometheus" in proc.stderr
    assert proc.stdout == ""


def test_an_error_from_prometheus_is_exit_3(prometheus: Served) -> None:
    # Not Prometheus' base URL: its API answers 404.
    proc = maestro(
        "--deployment", DEPLOYMENT, "--window", WINDOW, "--prometheus", f"{prometheus.url}/nope"
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "404" in proc.stderr and "base URL" in proc.stderr


@pytest.mark.parametrize(
    ("bad", "flag"),
    [
        (["--window", "30x"], "--window"),
        (["--format", "pdf"], "--format"),
        (["--objective", "100"], "--objective"),
        (["--latency-threshold-ms", "123"], "--latency-threshold-ms"),
        (["--end", "yesterday"], "--end"),
    ],
    ids=["window", "format", "objective", "threshold", "end"],
)
def test_bad_input_is_exit_2_naming_the_flag(prometheus: Served, bad: list[str], flag: str) -> None:
    args = report_args(prometheus)
    for i in range(0, len(bad), 2):
        if bad[i] in args:
            j = args.index(bad[i])
            del args[j : j + 2]
    proc = maestro(*args, *bad)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert flag in proc.stderr
    assert proc.stdout == ""


def test_no_prometheus_url_is_exit_2() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAESTRO_PROMETHEUS_URL"}
    command = Path(sys.executable).with_name("maestro")
    proc = subprocess.run(
        [str(command), "sla", "report", "--deployment", DEPLOYMENT, "--window", WINDOW],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--prometheus" in proc.stderr and "MAESTRO_PROMETHEUS_URL" in proc.stderr

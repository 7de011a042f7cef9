"""`maestro sla report`: the I/O around maestro.monitoring.sla (pure): the command line,
Prometheus' instant-query API (stdlib urllib) and the output file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maestro.monitoring import sla
from maestro.monitoring.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNAVAILABLE

PROMETHEUS_URL_ENV = "MAESTRO_PROMETHEUS_URL"

SLA_REPORT_EPILOG = f"""\
figures (each one instant PromQL query at the window's end; --format json lists them):
  requests         sum(increase(maestro_requests_total{{deployment,namespace}}[WINDOW])):
                   prediction requests of every code and protocol (HTTP and gRPC)
  errors (5xx)     the same with code=~"5..": answered with a server error (a gRPC error
                   counts with its HTTP status); 4xx are the caller's and count as served
  availability     1 - errors / requests: the share answered without a 5xx
  error rate       errors / requests
  latency p95/p99  histogram_quantile(q, sum by (le) (increase(
                   maestro_request_duration_seconds_bucket[WINDOW]))): estimated within
                   a bucket by linear interpolation; at most the last finite bound (10 s)
  error budget     100% - --objective (default {sla.DEFAULT_OBJECTIVE:g}%): the failing share the
                   objective allows, and so the failing requests it allows in the window
  budget consumed  errors / allowed errors; budget left = 1 - consumed (negative: overspent)
  burn rate        error rate / error budget: 1x spends exactly the budget over the window,
                   so over the report's window it equals the share consumed; above 1x the
                   objective was missed
  within N ms      with --latency-threshold-ms: the share of requests answered within N ms
                   (the histogram's bucket at N), with its own budget against
                   --latency-objective (default {sla.DEFAULT_LATENCY_OBJECTIVE:g}%)
  revisions        requests, errors and availability of each revision in the window

  The objective is the flag's, not read from the cluster: pass the deployment's
  spec.slo.availability (and spec.slo.latency) to report against its SLO.

exit status:
  0  report written
  2  bad input: an unknown --format, a bad --window (such as 30x), --objective or --end,
     no Prometheus URL, or a deployment name found in several namespaces without
     --namespace (the message names the flag)
  3  Prometheus unreachable, or it answered an error (the message says what to check)
  {sla.EXIT_NO_TRAFFIC}  no traffic: the deployment served no request in the window (or has no
     series: check the name and --namespace); the report is still written, every figure
     marked "no data" (null in JSON)

examples:
  maestro sla report --deployment iris --namespace ml --window 30d
  maestro sla report --deployment iris -n ml --window 30d --end 2026-11-01T00:00:00Z \\
      --objective 99.5 --latency-threshold-ms 250 --format html --output iris-october.html
"""


class PrometheusUnavailable(Exception):
    """Prometheus could not be reached or answered an error; the message says what to check."""


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def add_commands(commands: Any) -> None:
    """Add `sla` (with `report`) to the `maestro` command's subparsers."""
    group = commands.add_parser(
        "sla",
        help="service levels of a ModelDeployment from Prometheus",
        description="Service-level reports of ModelDeployments, read from Prometheus.",
    )
    sub = group.add_subparsers(dest="sla_command", required=True, metavar="SUBCOMMAND")
    report = sub.add_parser(
        "report",
        help="availability, p95/p99, error rate and error budget of a deployment over a window",
        description=(
            "Report whether a ModelDeployment met its service level over a window (e.g. the\n"
            "last 30 days): availability, latency p95 and p99, error rate, requests, and the\n"
            "error budget of an availability objective (consumed, left, burn rate), read from\n"
            "its serving metrics in Prometheus."
        ),
        epilog=SLA_REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "--deployment", required=True, metavar="NAME", help="the ModelDeployment's name"
    )
    report.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="its namespace (default: any; an error when the name serves in several)",
    )
    report.add_argument(
        "--window",
        required=True,
        type=_argument(sla.parse_window),
        metavar="DURATION",
        help="how far back from --end: a Prometheus duration such as 30d, 7d, 24h",
    )
    report.add_argument(
        "--end",
        type=_argument(sla.parse_time),
        metavar="TIME",
        help="the window's end: RFC 3339 (2026-11-01T00:00:00Z) or unix seconds (default: now)",
    )
    report.add_argument(
        "--format", choices=tuple(sla.RENDERERS), default="text", help="default: text"
    )
    report.add_argument(
        "--output", type=Path, metavar="FILE", help="write the report here (default: stdout)"
    )
    report.add_argument(
        "--prometheus",
        metavar="URL",
        help=f"Prometheus' base URL (default: ${PROMETHEUS_URL_ENV})",
    )
    report.add_argument(
        "--objective",
        type=_argument(sla.parse_objective),
        default=sla.DEFAULT_OBJECTIVE,
        metavar="PERCENT",
        help=f"availability objective in percent (default: {sla.DEFAULT_OBJECTIVE:g})",
    )
    report.add_argument(
        "--latency-threshold-ms",
        type=_argument(sla.parse_threshold_ms),
        metavar="MS",
        help="also report the share answered within MS, a bucket bound of the latency"
        " histogram (e.g. 100, 250, 500, 1000)",
    )
    report.add_argument(
        "--latency-objective",
        type=_argument(sla.parse_objective),
        default=sla.DEFAULT_LATENCY_OBJECTIVE,
        metavar="PERCENT",
        help="objective of the share within --latency-threshold-ms"
        f" (default: {sla.DEFAULT_LATENCY_OBJECTIVE:g})",
    )
    report.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="per query (default: 30)",
    )
    report.set_defaults(handler=_report_command)


# --- Prometheus' HTTP API ------------------------------------------------------------------


def instant_query(base_url: str, query: str, at: float, timeout: float) -> list[sla.Sample]:
    """GET /api/v1/query at `at`; the vector's samples. Raises PrometheusUnavailable."""
    url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode(
        {"query": query, "time": f"{at:.3f}", "timeout": f"{timeout:g}s"}
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout + 5) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = _error_body(err)
        if body is None:
            raise PrometheusUnavailable(
                f"{base_url} answered HTTP {err.code} {err.reason} to /api/v1/query: check that"
                f" --prometheus (or ${PROMETHEUS_URL_ENV}) is Prometheus' base URL"
            ) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise PrometheusUnavailable(
            f"cannot reach Prometheus at {base_url} ({reason}): check --prometheus (or"
            f" ${PROMETHEUS_URL_ENV}) and that Prometheus is running and reachable from here"
        ) from None
    except json.JSONDecodeError:
        raise PrometheusUnavailable(
            f"{base_url} did not answer /api/v1/query with JSON: check that --prometheus"
            f" (or ${PROMETHEUS_URL_ENV}) is Prometheus' base URL"
        ) from None
    return _vector(base_url, query, body)


def _error_body(err: urllib.error.HTTPError) -> Any:
    try:
        body = json.loads(err.read())
    except (json.JSONDecodeError, OSError):
        return None
    return body if isinstance(body, dict) and "status" in body else None


def _vector(base_url: str, query: str, body: Any) -> list[sla.Sample]:
    if not isinstance(body, dict) or body.get("status") != "success":
        kind = body.get("errorType", "error") if isinstance(body, dict) else "error"
        message = body.get("error", body) if isinstance(body, dict) else body
        raise PrometheusUnavailable(
            f"Prometheus at {base_url} answered {kind}: {message} (query: {query}); check its"
            " version (2.x or later) and its log"
        )
    data = body.get("data") or {}
    if data.get("resultType") == "scalar":
        return [({}, float(data["result"][1]))]
    if data.get("resultType") != "vector":
        raise PrometheusUnavailable(
            f"Prometheus at {base_url} answered a {data.get('resultType')!r} to {query}"
        )
    return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]


def gather(
    base_url: str, target: sla.Target, end: float, timeout: float
) -> dict[str, list[sla.Sample]]:
    return {
        name: instant_query(base_url, query, end, timeout)
        for name, query in sla.queries(target).items()
    }


# --- the command ---------------------------------------------------------------------------


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _report_command(args: argparse.Namespace) -> int:
    base_url = args.prometheus or os.environ.get(PROMETHEUS_URL_ENV, "")
    if not base_url:
        return _fail(
            EXIT_BAD_INPUT,
            f"--prometheus: no Prometheus URL; pass --prometheus URL or set ${PROMETHEUS_URL_ENV}",
        )
    if not args.deployment.strip():
        return _fail(EXIT_BAD_INPUT, "--deployment: give the ModelDeployment's name")
    if args.timeout <= 0:
        return _fail(EXIT_BAD_INPUT, f"--timeout: must be > 0, got {args.timeout:g}")
    end = args.end if args.end is not None else time.time()
    target = sla.Target(
        deployment=args.deployment,
        window=args.window,
        namespace=args.namespace,
        latency_threshold_ms=args.latency_threshold_ms,
    )
    try:
        results = gather(base_url, target, end, args.timeout)
    except PrometheusUnavailable as err:
        return _fail(EXIT_UNAVAILABLE, str(err))
    if target.namespace is None:
        found = sla.namespaces_with_traffic(results)
        if len(found) > 1:
            return _fail(
                EXIT_BAD_INPUT,
                f"--namespace: deployment {target.deployment!r} served requests in several"
                f" namespaces ({', '.join(found)}); pick one with --namespace",
            )
    return write(
        sla.build_report(
            target,
            end,
            results,
            objective=args.objective,
            latency_objective=args.latency_objective,
        ),
        args.format,
        args.output,
    )


def write(report: sla.Report, fmt: str, output: Path | None) -> int:
    """Render the report to stdout or `output`; the exit status (no traffic: 4)."""
    text = sla.RENDERERS[fmt](report)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as err:
            return _fail(EXIT_BAD_INPUT, f"--output: cannot write {output}: {err}")
        print(f"report: {output}", file=sys.stderr)
    if report.no_traffic:
        print(f"warning: {sla.no_traffic_message(report)}", file=sys.stderr)
        return sla.EXIT_NO_TRAFFIC
    return EXIT_OK

"""The cost of tracing (`make bench-tracing`) -> docs/benchmarks.md, "Tracing cost".

Per reconcile: the work queue's `process` (where every kind's reconcile runs, inside its
span) around a step that does nothing, 10,000 times, with OpenTelemetry's no-op tracer
(tracing off: OTEL_EXPORTER_OTLP_ENDPOINT unset) and with the SDK exporting in batches to
the platform's Jaeger (on). Per request: `maestro serve` with and without
OTEL_EXPORTER_OTLP_ENDPOINT (Jaeger again), wrk for a few seconds each at 1 and 16
connections, one row per request. Needs the platform's Jaeger binary (`make jaeger`); it is
started here if it is not running, and stopped again after.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

from opentelemetry.trace import Tracer

from maestro.localplatform import jaeger
from maestro.localplatform.cluster import ClusterConfig
from maestro.monitoring.tracing import otlp_tracer_provider, shutdown_tracing
from maestro.operators.core.workqueue import WorkQueue
from tests.bench.report import table, write_section
from tests.bench.serving_cases import body, path, save_model
from tests.bench.serving_servers import REPO, WORK, running, servers, wait_ready
from tests.bench.wrk import run_wrk

RECONCILES = 10_000
WRK_SECONDS = 5
CLIENTS = (1, 16)


class _Step:
    def run(self) -> None:
        pass

    def report_error(self, err: Exception) -> None:
        pass


def per_reconcile_us(tracer: Tracer | None, n: int = RECONCILES) -> float:
    """Microseconds one reconcile of a no-op step takes in the work queue, lock included."""
    queue = WorkQueue("ModelDeployment", lambda ns, name: None, tracer=tracer)
    obj = {"metadata": {"name": "a", "generation": 1}}
    step = _Step()
    for _ in range(200):  # warm-up
        queue.process("ns", "a", lambda: obj, lambda o: step)
    started = time.perf_counter()
    for _ in range(n):
        queue.process("ns", "a", lambda: obj, lambda o: step)
    return (time.perf_counter() - started) / n * 1e6


def reconcile_rows(endpoint: str) -> list[list[str]]:
    off = min(per_reconcile_us(None) for _ in range(3))
    # Room for every span of a run: the SDK's default queue (2048) would drop most of them
    # at this rate, and a dropped span costs less than an exported one.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(4 * RECONCILES)
    provider = otlp_tracer_provider(endpoint, "bench-operator")
    try:
        on = min(per_reconcile_us(provider.get_tracer("bench")) for _ in range(3))
    finally:
        shutdown_tracing(provider)
    return [
        ["off (OTEL_EXPORTER_OTLP_ENDPOINT unset: no span)", f"{off:.1f}", "-"],
        ["on (SDK, batched OTLP/HTTP to Jaeger)", f"{on:.1f}", f"+{on - off:.1f}"],
    ]


def request_rows(endpoint: str) -> list[list[str]]:
    model_dir = WORK / "tracing-model"
    data = save_model(model_dir)
    log_dir = WORK / "tracing-logs"
    base = servers(REPO / ".venv" / "bin", model_dir)["maestro"]
    variants = {
        "off": base,
        "on": replace(base, env={**base.env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}),
        # The SDK's standard sampler settings: a tenth of the traces that start here.
        "on, 10% sampled": replace(
            base,
            env={
                **base.env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
        ),
    }
    payload = log_dir / "body.json"
    payload.parent.mkdir(parents=True, exist_ok=True)
    payload.write_text(json.dumps(body("invocations", data, 1)))
    url = f"http://127.0.0.1:{base.port}{path('invocations')}"
    results: dict[tuple[str, int], dict[str, float]] = {}
    for label, server in variants.items():
        with running(server, log_dir) as proc:
            wait_ready(server, proc, data, log_dir, timeout=120)
            run_wrk(url, payload, 4, 2, 1)  # warm-up
            for clients in CLIENTS:
                results[(label, clients)] = run_wrk(url, payload, clients, WRK_SECONDS, 1)
    rows = []
    for clients in CLIENTS:
        for label in variants:
            r = results[(label, clients)]
            rps = r["requests"] / (r["duration_us"] / 1e6)
            errors = sum(v for k, v in r.items() if k.startswith("errors_"))
            rows.append(
                [
                    f"{label}",
                    str(clients),
                    f"{rps:.0f}",
                    f"{r['mean_us'] / 1000:.2f}",
                    f"{r['p50_us'] / 1000:.2f}",
                    f"{r['p99_us'] / 1000:.2f}",
                    f"{errors:.0f}",
                ]
            )
    return rows


def main() -> None:
    cfg = ClusterConfig()
    started_here = cfg.processes().pid(jaeger.PROCESS) is None
    local = jaeger.up(cfg)
    try:
        reconciles = reconcile_rows(local.otlp_endpoint)
        requests = request_rows(local.otlp_endpoint)
    finally:
        if started_here:
            jaeger.down(cfg)
    text = "\n\n".join(
        [
            "## Tracing cost (`make bench-tracing`)",
            "One reconcile of a step that does nothing, through the work queue every kind "
            f"uses (its lock, its span), mean of {RECONCILES:,} (best of 3 runs):",
            table(["tracing", "µs per reconcile", "added"], reconciles),
            "With tracing on, the added time is mostly the SDK's export thread (protobuf "
            "encoding, HTTP posts) and Jaeger itself sharing the 2 cores; a real reconcile "
            "makes API requests of milliseconds each, so the span adds a few percent at most.",
            "`maestro serve` (the breast-cancer pipeline, one row per `/invocations` request, "
            f"wrk {WRK_SECONDS} s per row, one wrk thread), OTLP export off and on "
            "(a span per request and per batch, exported in batches to the platform's Jaeger):",
            table(
                [
                    "OTLP export",
                    "connections",
                    "requests/s",
                    "mean ms",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                ],
                requests,
            ),
        ]
    )
    write_section("tracing", text)
    print(text)


if __name__ == "__main__":
    main()

"""`make bench-serving`: `maestro serve` against the model servers people use instead.

One run, side by side, on one machine, with C load generators from Debian's packages (wrk
for HTTP/1.1, h2load for gRPC) and one worker process per server, all loading the SAME
MLflow model directory (a StandardScaler + LogisticRegression pipeline on scikit-learn's
breast-cancer data, saved under .maestro/bench/):

- **maestro serve**: MLflow scoring protocol (`/invocations`, dataframe_split) and Open
  Inference Protocol v2 (`/v2/models/<name>/infer`, JSON; and its gRPC ModelInfer with
  raw_input_contents, driven by h2load, wrk's HTTP/2 counterpart: tests.bench.h2load);
- **mlflow models serve** (`--env-manager local --workers 1`, the project's .venv):
  `/invocations`, dataframe_split;
- **MLServer** with `mlserver_mlflow.MLflowRuntime` (`parallel_workers: 0`, its own venv made
  by tools/bench-serving-peers.sh): v2, one input per column, as its runtime expects for a
  model with a column signature;
- **floor**: a bare ASGI callable under uvicorn that parses the dataframe_split body and calls
  the native pipeline's predict on a NumPy array (tests/bench/serving_floor.py).

Cells: 1, 16 and 64 concurrent connections with single-row requests, and 16 with 100-row
requests; each cell is a warm-up run followed by the measured run. Servers run one at a
time: started, answers checked against the native pipeline's predictions, measured, stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from maestro.monitoring import metric_names
from tests.bench.h2load import CALL_PATH, grpc_frame, run_h2load
from tests.bench.report import table, write_section
from tests.bench.serving_cases import (
    CEILING_CELLS,
    CELLS,
    FLOOR_CELL,
    GOAL_CELL,
    BenchError,
    Cell,
    Data,
    grpc_message,
    path,
    request,
    save_model,
    url_path,
)
from tests.bench.serving_servers import (
    MLSERVER_VENV,
    REPO,
    WORK,
    Server,
    check_answers,
    log_tail,
    running,
    servers,
    wait_ready,
    write_mlserver_settings,
)
from tests.bench.wrk import run_wrk

MODEL_DIR = WORK / "breast-cancer-model"
PEERS_SCRIPT = "tools/bench-serving-peers.sh"
WIDTH = 92  # of the prose in docs/benchmarks.md


@dataclass(frozen=True)
class Result:
    server: str
    protocol: str
    cell: Cell
    requests: int
    ok: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    round: int = 0  # 0: the tables' run; 1..n: the interleaved rounds of Maestro's endpoints

    @property
    def rps(self) -> float:
        """Successful responses per second; non-2xx answers and socket errors do not count."""
        return self.ok / self.seconds


def load(
    server: Server, protocol: str, cell: Cell, data: Data, args: argparse.Namespace
) -> dict[str, float]:
    """A warm-up run, then the measured one: wrk for HTTP, h2load for gRPC."""
    if protocol != "grpc":
        return http_load(server, protocol, cell, data, args)
    frame_file = WORK / "bodies" / f"grpc-{cell.rows}.frame"
    if not frame_file.exists():
        frame_file.parent.mkdir(parents=True, exist_ok=True)
        frame_file.write_bytes(grpc_frame(grpc_message(data, cell.rows)))
    url = f"http://127.0.0.1:{server.grpc_port}{CALL_PATH}"
    before = grpc_outcomes(server)
    raw = run_h2load(url, frame_file, cell.clients, args.duration, args.warmup)
    after = grpc_outcomes(server)
    # gRPC errors are HTTP 200s to h2load: the server's counter says which calls failed
    # (warm-up included). A call the client abandoned when its run ended (499) is not one.
    failed = sum(n - before.get(code, 0) for code, n in after.items() if code not in OK_CODES)
    raw["errors_status"] += failed
    return raw


OK_CODES = ("200", "499")


def grpc_outcomes(server: Server) -> dict[str, float]:
    """maestro serve's gRPC calls so far by outcome (the HTTP status of the same outcome);
    empty for a server without that counter (the no-op ceiling answers a fixed message)."""
    if server.key != "maestro":
        return {}
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=30).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != metric_names.REQUESTS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("protocol") == "grpc":
                code = sample.labels["code"]
                counts[code] = counts.get(code, 0.0) + sample.value
    return counts


def http_load(
    server: Server, protocol: str, cell: Cell, data: Data, args: argparse.Namespace
) -> dict[str, float]:
    content, headers = request(protocol, data, cell.rows)
    body_file = WORK / "bodies" / f"{protocol}-{cell.rows}.body"
    if not body_file.exists():
        body_file.parent.mkdir(parents=True, exist_ok=True)
        body_file.write_bytes(content)
    url = f"http://127.0.0.1:{server.port}{url_path(protocol)}"
    run_wrk(url, body_file, cell.clients, args.warmup, args.threads, headers)
    # wrk stops without waiting for its last requests; a server may still be working through
    # them. One answered request (queued behind them) means the measured run starts clean.
    httpx.post(url, content=content, headers=headers, timeout=120)
    return run_wrk(url, body_file, cell.clients, args.duration, args.threads, headers)


def measure(
    server: Server, protocol: str, cell: Cell, data: Data, args: argparse.Namespace
) -> Result:
    raw = load(server, protocol, cell, data, args)
    errors = int(
        raw["errors_status"]
        + raw["errors_connect"]
        + raw["errors_read"]
        + raw["errors_write"]
        + raw["errors_timeout"]
    )
    result = Result(
        server=server.key,
        protocol=protocol,
        cell=cell,
        requests=int(raw["requests"]),
        ok=int(raw["requests"] - raw["errors_status"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        errors=errors,
    )
    print(
        f"  {server.label:<40} {protocol:<12} {cell.label:<20} {result.rps:9.0f} req/s  "
        f"p50 {ms(result.p50_ms):>7} ms  p99 {ms(result.p99_ms):>7} ms  errors {errors}",
        flush=True,
    )
    return result


ROUND_PROTOCOLS = ("invocations", "v2", "grpc")


def interleaved_rounds(server: Server, data: Data, args: argparse.Namespace) -> list[Result]:
    """Maestro's endpoints at GOAL_CELL again, one after another, `args.rounds` times: the
    goals that compare two of its endpoints use these (see endpoint_goal)."""
    out = []
    for number in range(1, args.rounds + 1):
        print(f"  round {number} of {args.rounds}", flush=True)
        for protocol in ROUND_PROTOCOLS:
            result = measure(server, protocol, GOAL_CELL, data, args)
            out.append(dataclasses.replace(result, round=number))
    return out


def ms(value: float) -> str:
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.2f}"
    return f"{value:.0f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool
    figures: str


def find(
    results: Sequence[Result], server: str, protocol: str, cell: Cell, number: int = 0
) -> Result:
    """A result of the tables' run, or of interleaved round `number`."""
    wanted = (server, protocol, cell, number)
    for result in results:
        if (result.server, result.protocol, result.cell, result.round) == wanted:
            return result
    where = f" in round {number}" if number else ""
    raise BenchError(f"no result for {server} {protocol} {cell.label}{where}")


# Each peer is compared with Maestro speaking the same protocol.
PAIRS = (("mlflow", "invocations", 15.0), ("mlserver", "v2", 10.0))
# The ceilings too, on the cells they are measured in.
CEILINGS = (
    *((ceiling, protocol) for ceiling in ("fastapi", "asgi") for protocol in ("invocations", "v2")),
    ("grpc", "grpc"),
)
# Goals of the request path: /invocations against the framework's ceiling, v2 JSON against
# /invocations, gRPC against v2 JSON (all at GOAL_CELL).
NO_OPS = ("fastapi", "asgi", "grpc")
CEILING_SHARE = 0.8
V2_SHARE = 0.8


def share_goal(text: str, ours: Result, theirs: Result, share: float, more: str = "") -> Goal:
    """Ours at least `share` of theirs' throughput, at GOAL_CELL, without errors."""
    return Goal(
        f"{GOAL_CELL.label}: {text}",
        ours.errors == 0 and ours.rps >= share * theirs.rps,
        f"{ratio(ours.rps / theirs.rps)} ({ours.rps:.0f} vs {theirs.rps:.0f} req/s){more}",
    )


def endpoint_goal(
    text: str, results: Sequence[Result], ours: str, theirs: str, share: float, more: str = ""
) -> Goal:
    """One Maestro endpoint at least `share` of another's throughput at GOAL_CELL: judged
    on the median of the interleaved rounds' ratios when the run has rounds (each round
    measures both within seconds, so a machine that slows down during the run does not
    decide it), else on the tables' run."""
    a, b = find(results, "maestro", ours, GOAL_CELL), find(results, "maestro", theirs, GOAL_CELL)
    rounds = sorted({r.round for r in results if r.round > 0})
    if not rounds:
        return share_goal(text, a, b, share, more)
    pairs = [
        (
            find(results, "maestro", ours, GOAL_CELL, n),
            find(results, "maestro", theirs, GOAL_CELL, n),
        )
        for n in rounds
    ]
    ratios = sorted(x.rps / y.rps for x, y in pairs)
    middle = ratios[len(ratios) // 2]
    errors = sum(x.errors for x, _ in pairs) + a.errors
    return Goal(
        f"{GOAL_CELL.label}: {text}",
        errors == 0 and middle >= share,
        f"{ratio(middle)}, the median of {len(rounds)} interleaved rounds ("
        + ", ".join(f"{x.rps:.0f} vs {y.rps:.0f} req/s" for x, y in pairs)
        + f"); {ratio(a.rps / b.rps)} in the table's run"
        + (f"; {errors} errors" if errors else "")
        + more,
    )


def goals(results: Sequence[Result], labels: dict[str, str]) -> list[Goal]:
    out = []
    for peer, protocol, factor in PAIRS:
        ours = find(results, "maestro", protocol, GOAL_CELL)
        theirs = find(results, peer, protocol, GOAL_CELL)
        met = ours.errors == 0 and ours.rps >= factor * theirs.rps and ours.p99_ms < theirs.p99_ms
        out.append(
            Goal(
                f"{GOAL_CELL.label}: at least {factor:.0f}x {labels[peer]}'s throughput "
                f"with a lower p99 (`{path(protocol)}` both)",
                met,
                f"{ratio(ours.rps / theirs.rps)} throughput; p99 {ms(ours.p99_ms)} ms vs "
                f"{ms(theirs.p99_ms)} ms" + (f"; {ours.errors} errors" if ours.errors else ""),
            )
        )
    json_v2 = find(results, "maestro", "v2", GOAL_CELL)
    invocations = find(results, "maestro", "invocations", GOAL_CELL)
    if any(r.server == "fastapi" for r in results):
        bare = find(results, "asgi", "invocations", GOAL_CELL)
        text = f"`{path('invocations')}` at least {CEILING_SHARE}x the throughput of "
        out.append(
            share_goal(
                text + labels["fastapi"],
                invocations,
                find(results, "fastapi", "invocations", GOAL_CELL),
                CEILING_SHARE,
                f"; {ratio(invocations.rps / bare.rps)} of {labels['asgi']} ({bare.rps:.0f} req/s)",
            )
        )
    text = f"`{path('v2')}` (JSON) at least {V2_SHARE}x the throughput of `{path('invocations')}`"
    out.append(endpoint_goal(text + ", both Maestro", results, "v2", "invocations", V2_SHARE))
    if any(r.server == "maestro" and r.protocol == "grpc" for r in results):
        grpc = find(results, "maestro", "grpc", GOAL_CELL)
        more = f"; p99 {ms(grpc.p99_ms)} ms vs {ms(json_v2.p99_ms)} ms in the table's run"
        if any(r.server == "grpc" for r in results):
            ceiling = find(results, "grpc", "grpc", GOAL_CELL)
            more += (
                f"; {labels['grpc']} {ceiling.rps:.0f} req/s, so Maestro's gRPC is "
                f"{ratio(grpc.rps / ceiling.rps)} of its library's ceiling"
            )
        text = f"`{path('grpc')}` at least the throughput of `{path('v2')}` (JSON), both Maestro"
        out.append(endpoint_goal(text, results, "grpc", "v2", 1.0, more))
    floor = find(results, "floor", "invocations", FLOOR_CELL)
    for protocol in ("invocations", "v2"):
        ours = find(results, "maestro", protocol, FLOOR_CELL)
        out.append(
            Goal(
                f"{FLOOR_CELL.label}: p50 within 2x of the floor (`{path(protocol)}`)",
                ours.errors == 0 and ours.p50_ms <= 2 * floor.p50_ms,
                f"{ms(ours.p50_ms)} ms vs floor {ms(floor.p50_ms)} ms = "
                f"{ratio(ours.p50_ms / floor.p50_ms)}",
            )
        )
    return out


def compare(
    results: Sequence[Result], labels: dict[str, str], peer: str, protocol: str, cell: Cell
) -> list[str]:
    """A row of the ratio table: Maestro over the peer, on the same endpoint and cell."""
    ours = find(results, "maestro", protocol, cell)
    theirs = find(results, peer, protocol, cell)
    return [
        cell.label,
        f"{labels[peer]} (`{path(protocol)}`)",
        ratio(ours.rps / theirs.rps),
        ratio(ours.p50_ms / theirs.p50_ms),
        ratio(ours.p99_ms / theirs.p99_ms),
    ]


def render(
    results: Sequence[Result],
    labels: dict[str, str],
    ready: dict[str, float],
    data: Data,
    args: argparse.Namespace,
    versions: dict[str, str],
    load: tuple[float, float] | None = None,
) -> str:
    rows = []
    for cell in CELLS:
        for result in results:
            if result.cell == cell and result.round == 0:
                rows.append(
                    [
                        cell.label,
                        f"{labels[result.server]} (`{path(result.protocol)}`)",
                        f"{result.rps:.0f}",
                        ms(result.p50_ms),
                        ms(result.p99_ms),
                        str(result.errors),
                    ]
                )
    ratio_rows = []
    has_maestro = any(r.server == "maestro" for r in results)
    if has_maestro:
        for cell in CEILING_CELLS:
            for peer, protocol in CEILINGS:
                if any(r.server == peer for r in results):
                    ratio_rows.append(compare(results, labels, peer, protocol, cell))
        for cell in CELLS:
            for peer, protocol, _ in PAIRS:
                ratio_rows.append(compare(results, labels, peer, protocol, cell))
    setup = (
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores ({cpu_name()}); one "
        "run, the servers one after another. Model: StandardScaler + LogisticRegression on "
        f"scikit-learn's breast-cancer data (30 float columns, held-out accuracy "
        f"{data.accuracy:.3f}), saved once with `mlflow.sklearn.save_model` (signature and "
        "input example); every server loads that same directory, one worker process each, "
        "default settings otherwise. Load: wrk "
        f"{versions['wrk']} with {args.threads} thread (wrk and the server share the 2 cores, "
        "unpinned), keep-alive connections, each client sending its next request when the "
        f"last is answered; per cell a {args.warmup} s warm-up, then {args.duration} s "
        "measured. Bodies: `/invocations` gets `dataframe_split`; `/v2/models/<name>/infer` "
        "gets one FP64 input per column (what MLServer's MLflow runtime decodes for a column "
        "signature); the binary rows send those inputs as raw bytes after a JSON header "
        "(the binary tensor extension, as Triton's HTTP client does by default) and ask for "
        "binary outputs; Maestro's gRPC rows send the same inputs as one ModelInferRequest "
        "with raw_input_contents, from h2load (nghttp2's HTTP/2 load generator, a C program "
        "like wrk: one connection per client, one call in flight each; gRPC outcomes from "
        "the server's request counter, as h2load sees HTTP statuses only). The three "
        "ceilings are no-op endpoints that read the request and answer a fixed document "
        "(tests/bench/serving_ceiling.py): a FastAPI route, a bare ASGI callable (Maestro's "
        "prediction routes are plain ASGI in front of FastAPI) and grpcio's asyncio server "
        "(Maestro's gRPC service runs on it). Every "
        "model server's answers were checked against the native pipeline's predictions "
        "before it was measured. req/s counts 2xx answers only; errors are non-2xx answers "
        "plus socket errors and timeouts (30 s). After its cells, Maestro's `/invocations`, "
        f"v2 JSON and gRPC endpoints are measured again at 64 clients in {args.rounds} "
        "interleaved rounds (the three back to back in each); the goals that compare two of "
        "its endpoints take the median of the rounds' ratios, as this shared machine's speed "
        "drifts by more than those goals' margins between minutes."
    )
    facts = (
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "wrk")
        + ". Seconds from start to the first answered prediction: "
        + ", ".join(f"{labels[k]} {v:.1f} s" for k, v in ready.items() if k not in NO_OPS)
        + "."
    )
    if load is not None:
        facts += (
            f" The machine's 1-minute load average was {load[0]:.2f} at the start and "
            f"{load[1]:.2f} at the end (above ~0.5, other work shared the cores)."
        )
    lines = [
        "## Serving: `maestro serve` vs `mlflow models serve` and MLServer (`make bench-serving`)",
        "",
        textwrap.fill(setup, WIDTH),
        "",
        textwrap.fill(facts, WIDTH),
        "",
        table(["load", "server (endpoint)", "req/s", "p50 ms", "p99 ms", "errors"], rows),
    ]
    if ratio_rows:
        lines += [
            "",
            textwrap.fill(
                "Maestro vs each peer on the same endpoint (throughput: Maestro / peer, higher "
                "is better; latency: Maestro / peer, lower is better):",
                WIDTH,
            ),
            "",
            table(["load", "peer (endpoint)", "throughput", "p50", "p99"], ratio_rows),
            "",
            "Goals:",
            "",
        ]
        lines += [
            f"- {'met' if g.met else 'NOT met'}: {g.text} — {g.figures}"
            for g in goals(results, labels)
        ]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def versions(venv_bin: Path) -> dict[str, str]:
    import mlflow
    import sklearn

    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        except FileNotFoundError:
            return "missing"
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else ""

    mlserver = out([str(MLSERVER_VENV / "bin" / "mlserver"), "--version"]).split()[-1]
    wrk = out(["wrk", "--version"]).split()
    return {
        "Python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "scikit-learn": sklearn.__version__,
        "MLServer": mlserver,
        "wrk": wrk[1] if len(wrk) > 1 else "missing",
        "h2load": (out(["h2load", "--version"]).split() or ["", "missing"])[-1],
    }


def preflight(chosen: Sequence[Server], venv_bin: Path) -> None:
    if shutil.which("wrk") is None:
        raise BenchError(f"wrk is missing: run {PEERS_SCRIPT} (or make bench-serving)")
    if shutil.which("h2load") is None:
        raise BenchError(f"h2load is missing: run {PEERS_SCRIPT} (or make bench-serving)")
    if not (MLSERVER_VENV / "bin" / "mlserver").exists() and any(
        s.key == "mlserver" for s in chosen
    ):
        raise BenchError(f"MLServer's venv is missing: run {PEERS_SCRIPT} (or make bench-serving)")
    if any(s.key == "maestro" for s in chosen):
        probe = subprocess.run(
            [str(venv_bin / "maestro"), "serve", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            raise BenchError(
                "`maestro serve` is not usable, so its row cannot be measured: "
                f"`maestro serve --help` exited {probe.returncode}:\n"
                f"{(probe.stderr or probe.stdout).strip()[-800:]}\n"
                "Run with --only peers to measure the peers and the floor alone."
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per cell")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of Maestro's endpoints at 64 clients, for the goals that"
        " compare them",
    )
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per cell")
    parser.add_argument(
        "--threads", type=int, default=1, help="wrk threads (1 leaves a core to the server)"
    )
    parser.add_argument(
        "--only",
        choices=("all", "peers"),
        default="all",
        help="peers: the floor and the peers alone (prints; never writes docs)",
    )
    parser.add_argument("--ready-timeout", type=float, default=180)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    args = parser.parse_args(argv)

    venv_bin = Path(sys.executable).parent
    log_dir = WORK / "logs"
    all_servers = servers(venv_bin, MODEL_DIR)
    order = ["fastapi", "asgi", "grpc", "floor", "maestro", "mlflow", "mlserver"]
    if args.only == "peers":
        order.remove("maestro")
    chosen = [all_servers[key] for key in order]
    labels = {key: s.label for key, s in all_servers.items()}

    load_start = os.getloadavg()[0]
    try:
        preflight(chosen, venv_bin)
        print(f"saving the model to {MODEL_DIR.relative_to(REPO)} ...", flush=True)
        data = save_model(MODEL_DIR)
        shutil.rmtree(WORK / "bodies", ignore_errors=True)
        write_mlserver_settings(WORK / "mlserver", MODEL_DIR)
        results: list[Result] = []
        ready: dict[str, float] = {}
        for server in chosen:
            print(f"{server.label}: starting ...", flush=True)
            with running(server, log_dir) as proc:
                ready[server.key] = wait_ready(server, proc, data, log_dir, args.ready_timeout)
                check_answers(server, data)
                cells = CELLS
                if server.key == "floor":
                    cells = (FLOOR_CELL,)
                elif not server.predicts:
                    cells = CEILING_CELLS
                for protocol in server.protocols:
                    for cell in cells:
                        results.append(measure(server, protocol, cell, data, args))
                if server.key == "maestro":
                    results += interleaved_rounds(server, data, args)
                if proc.poll() is not None:
                    raise BenchError(
                        f"{server.label} exited during the run:\n{log_tail(server, log_dir)}"
                    )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    load = (load_start, os.getloadavg()[0])
    text = render(results, labels, ready, data, args, versions(venv_bin), load)
    print()
    print(text)
    if args.no_write or args.only != "all":
        return 0
    write_section("bench-serving", text)
    print("\nwritten to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-drift`: `maestro drift check` against Evidently run directly, same data,
same per-column tests.

Data: ROWS rows x 50 columns (40 float, 10 string categories), reference and current
Parquet files; the current is shifted on exactly SHIFTED columns. Every figure comes from
its own subprocess (peak RSS from os.wait4 of that process alone): the first
`maestro drift check` (hashes the reference and builds its statistics cache), then
`maestro drift check` with the cache (RUNS times, median), then Evidently (Report with
DataDriftPreset, each column's test forced to the one maestro chose) reading the same
Parquet files. Both must find the same drifted columns with equal scores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.bench.report import table, write_section

REPO = Path(__file__).resolve().parents[2]
ROWS = 1_000_000
NUMERICAL, CATEGORICAL = 40, 10
# Shifted in the current data: means, scales, category shares.
SHIFTED = ("f00", "f01", "f02", "f10", "f11", "c0", "c1")
RUNS = 3


def generate(folder: Path, rows: int, seed: int = 7) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    categories = np.array([f"cat{i:02d}" for i in range(20)])

    def table_of(shifted: bool) -> pa.Table:
        columns: dict[str, pa.Array] = {}
        for i in range(NUMERICAL):
            name = f"f{i:02d}"
            shift = shifted and name in SHIFTED
            if i % 3 == 0:
                values = rng.normal(0.3 if shift else 0.0, 1.0, rows)
            elif i % 3 == 1:
                values = rng.exponential(1.5 if shift else 1.0, rows)
            else:
                values = rng.uniform(0.0, 1.3 if shift else 1.0, rows)
            values[rng.random(rows) < 0.01] = np.nan  # 1% missing
            columns[name] = pa.array(values)
        for i in range(CATEGORICAL):
            name = f"c{i}"
            weights = np.linspace(1.0, 2.0, len(categories))
            if shifted and name in SHIFTED:
                weights = weights[::-1] ** 3
            codes = rng.choice(len(categories), rows, p=weights / weights.sum())
            columns[name] = pa.array(categories[codes])
        return pa.table(columns)

    reference, current = folder / "reference.parquet", folder / "current.parquet"
    pq.write_table(table_of(False), reference)
    pq.write_table(table_of(True), current)
    return reference, current


@dataclass(frozen=True)
class Measured:
    wall: float
    peak_mb: float
    stdout: str


def measure(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Wall time and peak RSS of one subprocess (os.wait4: its own rusage)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    out, err = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {err[-2000:]}")
    peak = json.loads(err.strip().splitlines()[-1])["peak_mb"]
    return Measured(wall, float(peak), out)


def wrapped(command: list[str]) -> list[str]:
    """Run `command` under this module's --measure wrapper, which prints its peak RSS."""
    return [sys.executable, "-m", "tests.bench.drift", "--measure", "--", *command]


def measure_child(command: list[str]) -> int:
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.stderr.write(json.dumps({"peak_mb": usage.ru_maxrss / 1024}) + "\n")
    return code


def evidently_worker(reference: str, current: str, tests_file: str) -> int:
    """Evidently alone: read both files, run its preset with the tests forced, print JSON."""
    chosen = json.loads(Path(tests_file).read_text())
    import pandas as pd

    start = time.perf_counter()
    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current)
    loaded = time.perf_counter()
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = list(chosen)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(
            [DataDriftPreset(columns=columns, per_column_method=chosen)], include_tests=True
        ).run(cur, ref)
    done = time.perf_counter()
    found = {}
    for metric in snapshot.dict()["metrics"]:
        if metric["config"]["type"].endswith("ValueDrift"):
            found[metric["config"]["column"]] = float(metric["value"])
    verdicts = {}
    for test in snapshot.dict()["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type", "").endswith("ValueDrift"):
            verdicts[params["column"]] = str(test["status"].value) == "FAIL"
    print(
        json.dumps(
            {
                "scores": found,
                "drifted": verdicts,
                "load_s": loaded - start,
                "report_s": done - loaded,
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.drift",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--data", type=Path, default=REPO / ".maestro" / "bench" / "drift")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the doc")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--evidently-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return measure_child(args.command)
    if args.evidently_worker:
        return evidently_worker(*args.evidently_worker)

    started = time.perf_counter()
    shutil.rmtree(args.data, ignore_errors=True)
    t0 = time.perf_counter()
    reference, current = generate(args.data, args.rows)
    os.sync()  # the files' write-back must not slow the first measured run
    print(f"data: {args.rows} rows x 50 columns in {time.perf_counter() - t0:.1f} s", flush=True)
    maestro = [
        str(REPO / ".venv" / "bin" / "maestro"),
        "drift",
        "check",
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--output",
        "json",
    ]
    cold = measure(wrapped(maestro))
    print(f"maestro, first run (builds the cache): {cold.wall:.1f} s", flush=True)
    warm = [measure(wrapped(maestro)) for _ in range(RUNS)]
    result = json.loads(warm[-1].stdout)
    wall = statistics.median(m.wall for m in warm)
    peak = max(m.peak_mb for m in warm)
    print(f"maestro, cached: {wall:.2f} s, {peak:.0f} MB", flush=True)
    tests = {c["name"]: c["test"] for c in result["columns"]}
    ours_drifted = sorted(c["name"] for c in result["columns"] if c["drifted"])
    cache_bytes = sum(
        p.stat().st_size for p in Path(f"{reference}.maestro-refstats").rglob("*") if p.is_file()
    )

    rows = [
        [
            "`maestro drift check`, cache built",
            f"{wall:.2f} s",
            f"{peak:.0f} MB",
            "1.0x",
        ],
        [
            "`maestro drift check`, first run (hashes, builds the cache)",
            f"{cold.wall:.2f} s",
            f"{cold.peak_mb:.0f} MB",
            "",
        ],
    ]
    verdict = ""
    if not args.skip_evidently:
        tests_file = args.data / "tests.json"
        tests_file.write_text(json.dumps(tests))
        worker = [
            sys.executable,
            "-m",
            "tests.bench.drift",
            "--evidently-worker",
            str(reference),
            str(current),
            str(tests_file),
        ]
        peer = measure(wrapped(worker))
        found = json.loads(peer.stdout)
        print(f"evidently: {peer.wall:.1f} s, {peer.peak_mb:.0f} MB", flush=True)
        theirs_drifted = sorted(c for c, d in found["drifted"].items() if d)
        ours = {c["name"]: c["score"] for c in result["columns"]}
        worst = max(
            abs(ours[c] - s) / abs(s) if s else abs(ours[c]) for c, s in found["scores"].items()
        )
        same = ours_drifted == theirs_drifted
        rows.append(
            [
                "Evidently 0.7 (Report + DataDriftPreset, same tests)",
                f"{peer.wall:.2f} s",
                f"{peer.peak_mb:.0f} MB",
                f"{peer.wall / wall:.1f}x slower",
            ]
        )
        verdict = (
            f"Drifted columns: maestro {', '.join(ours_drifted)}; Evidently"
            f" {', '.join(theirs_drifted)} ({'the same' if same else 'DIFFERENT'}); largest"
            f" relative score difference over the 50 columns {worst:.1e}. Evidently's own time:"
            f" {found['load_s']:.1f} s reading the two Parquet files, {found['report_s']:.1f} s"
            " in the report.\n"
        )
    test_counts = {t: list(tests.values()).count(t) for t in sorted(set(tests.values()))}
    body = f"""## Data drift: `maestro drift check` vs Evidently (`make bench-drift`)

{args.rows:,} rows x 50 columns (40 float with 1% missing, 10 string categories of 20
values), reference and current Parquet files; the current is shifted on
{", ".join(SHIFTED)} only. Tests: `--stat-test auto`, which chose
{", ".join(f"{t} ({n} columns)" for t, n in test_counts.items())}; Evidently runs with the
same test forced per column. Each row is one process (wall time including Python start,
imports and reading Parquet; peak RSS of that process alone); the cached maestro figure is
the median of {RUNS} runs. The reference statistics cache is {cache_bytes / 2**20:.0f} MB.

{table(["run", "wall time", "peak memory", "vs maestro"], rows)}

{verdict}
Run {dt.date.today().isoformat()}, {os.cpu_count()} CPUs, whole benchmark
{time.perf_counter() - started:.0f} s.
"""
    print(body)
    if not args.no_write:
        write_section("bench-drift", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

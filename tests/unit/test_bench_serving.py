"""The pure parts of `make bench-serving`: request bodies, answers, wrk's report, the goals."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from tests.bench.h2load import grpc_frame, parse_log
from tests.bench.serving import Result, endpoint_goal, goals, render
from tests.bench.serving_cases import (
    CELLS,
    FLOOR_CELL,
    GOAL_CELL,
    BenchError,
    Cell,
    Data,
    binary_request,
    body,
    grpc_message,
    grpc_predictions,
    predictions,
)
from tests.bench.wrk import parse_wrk

pytestmark = pytest.mark.unit

DATA = Data(
    columns=["mean radius", "mean texture"],
    rows=[[1.5, 2.25], [3.0, 4.125], [5.0, 6.0]],
    expected=[1, 0, 1],
    accuracy=0.98,
)
LABELS = {"floor": "floor", "maestro": "maestro serve", "mlflow": "mlflow", "mlserver": "MLServer"}

WRK_OUTPUT = """\
Running 8s test @ http://127.0.0.1:18202/invocations
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.10ms    1.20ms  30.00ms   90.00%
  40000 requests in 8.00s, 5.00MB read
maestro-wrk requests=40000 duration_us=8000123 bytes=5000000 p50_us=4900 p90_us=6100 \
p99_us=9800 max_us=30000 mean_us=5100.5 errors_connect=0 errors_read=0 errors_write=0 \
errors_status=12 errors_timeout=1
Requests/sec:   5000.00
"""


def test_parse_wrk_reads_the_scripts_line_among_wrks_own() -> None:
    got = parse_wrk(WRK_OUTPUT)
    assert got["requests"] == 40000
    assert got["duration_us"] == 8000123
    assert (got["p50_us"], got["p99_us"]) == (4900, 9800)
    assert (got["errors_status"], got["errors_timeout"]) == (12, 1)
    assert got["mean_us"] == 5100.5


def test_parse_wrk_without_the_line_fails_showing_wrks_output() -> None:
    with pytest.raises(BenchError, match="unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:18202 Connection refused\n")


def test_invocations_body_is_a_dataframe_split_of_the_first_rows() -> None:
    assert body("invocations", DATA, 2) == {
        "dataframe_split": {"columns": DATA.columns, "data": [[1.5, 2.25], [3.0, 4.125]]}
    }


def test_v2_body_has_one_fp64_input_per_column() -> None:
    inputs = body("v2", DATA, 3)["inputs"]
    assert [i["name"] for i in inputs] == DATA.columns
    assert inputs[1] == {
        "name": "mean texture",
        "datatype": "FP64",
        "shape": [3, 1],
        "data": [2.25, 4.125, 6.0],
    }


def test_unknown_protocol_is_named() -> None:
    with pytest.raises(ValueError, match="protocol: unknown 'grpc'"):
        body("grpc", DATA, 1)


@pytest.mark.parametrize(
    ("protocol", "answer", "labels"),
    [
        ("invocations", {"predictions": [1, 0, 1]}, [1, 0, 1]),
        ("invocations", {"predictions": [[1], [0]]}, [1, 0]),
        ("invocations", {"predictions": [{"0": 1}, {"0": 0}]}, [1, 0]),
        ("v2", {"outputs": [{"name": "output-1", "data": [0, 1]}]}, [0, 1]),
    ],
    ids=["flat", "nested-lists", "records", "v2"],
)
def test_predictions_reads_each_answer_shape(
    protocol: str, answer: dict[str, Any], labels: list[int]
) -> None:
    assert predictions(protocol, json.dumps(answer).encode(), {}) == labels


def result(
    server: str, protocol: str, cell: Cell, rps: float, p50: float, p99: float, errors: int = 0
) -> Result:
    return Result(
        server=server,
        protocol=protocol,
        cell=cell,
        requests=int(rps * 10) + errors,
        ok=int(rps * 10),
        seconds=10.0,
        p50_ms=p50,
        p99_ms=p99,
        errors=errors,
    )


def full_run(
    maestro_rps: float, maestro_p99: float, maestro_p50_1: float, errors: int = 0
) -> list[Result]:
    out = [result("floor", "invocations", FLOOR_CELL, 2000, 0.5, 0.9)]
    for cell in CELLS:
        for protocol in ("invocations", "v2"):
            p50 = maestro_p50_1 if cell == FLOOR_CELL else 5.0
            out.append(result("maestro", protocol, cell, maestro_rps, p50, maestro_p99, errors))
        out.append(result("mlflow", "invocations", cell, 100, 150, 400))
        out.append(result("mlserver", "v2", cell, 100, 120, 1500))
    return out


def test_goals_met_when_throughput_latency_and_floor_all_hold() -> None:
    met = goals(full_run(maestro_rps=1500, maestro_p99=20, maestro_p50_1=0.9), LABELS)
    assert [g.met for g in met] == [True, True, True, True, True]
    assert "15.0x throughput" in met[0].figures


@pytest.mark.parametrize(
    ("run", "failed"),
    [
        (full_run(maestro_rps=1400, maestro_p99=20, maestro_p50_1=0.9), [0]),
        (full_run(maestro_rps=900, maestro_p99=20, maestro_p50_1=0.9), [0, 1]),
        (full_run(maestro_rps=5000, maestro_p99=450, maestro_p50_1=0.9), [0]),
        (full_run(maestro_rps=5000, maestro_p99=20, maestro_p50_1=1.1), [3, 4]),
        (full_run(maestro_rps=5000, maestro_p99=20, maestro_p50_1=0.9, errors=3), [0, 1, 2, 3, 4]),
    ],
    ids=["under-15x-mlflow", "under-10x-both", "p99-above-mlflow", "p50-over-2x-floor", "errors"],
)
def test_goals_not_met(run: list[Result], failed: list[int]) -> None:
    assert [i for i, g in enumerate(goals(run, LABELS)) if not g.met] == failed


def test_render_prints_ratios_and_goals_only_with_a_maestro_row() -> None:
    args = argparse.Namespace(threads=1, warmup=2, duration=8, rounds=3)
    versions = {"mlflow": "3", "wrk": "4.1.0"}
    ready = {"floor": 1.0}
    with_maestro = render(full_run(1500, 20, 0.9), LABELS, ready, DATA, args, versions)
    assert "| 64 clients, 1 row | mlflow (`/invocations`) | 15.0x | 0.03x | 0.05x |" in with_maestro
    assert "- met: 64 clients, 1 row: at least 10x MLServer's throughput" in with_maestro
    peers = [r for r in full_run(1500, 20, 0.9) if r.server != "maestro"]
    peers_only = render(peers, LABELS, ready, DATA, args, versions)
    assert "Goals" not in peers_only
    assert (
        f"| {GOAL_CELL.label} | MLServer (`/v2/models/breast-cancer/infer`) | 100 |" in peers_only
    )


def with_rounds(
    run: list[Result], rounds: list[tuple[float, float]], errors: int = 0
) -> list[Result]:
    """`run` plus interleaved rounds of Maestro's v2 and /invocations at the goal cell."""
    out = list(run)
    for number, (v2, invocations) in enumerate(rounds, start=1):
        for protocol, rps in (("v2", v2), ("invocations", invocations)):
            measured = result("maestro", protocol, GOAL_CELL, rps, 5.0, 9.0, errors)
            out.append(dataclasses.replace(measured, round=number))
    return out


def test_an_endpoint_goal_is_judged_on_the_median_of_the_rounds() -> None:
    # The tables' run says 0.7x (700 vs 1000); the rounds 0.9x, 0.85x and 0.5x.
    run = [
        result("maestro", "v2", GOAL_CELL, 700, 5.0, 9.0),
        result("maestro", "invocations", GOAL_CELL, 1000, 5.0, 9.0),
    ]
    goal = endpoint_goal(
        "v2 vs inv",
        with_rounds(run, [(900, 1000), (850, 1000), (400, 800)]),
        "v2",
        "invocations",
        0.8,
    )
    assert goal.met
    assert goal.figures.startswith("0.85x, the median of 3 interleaved rounds")
    assert "0.70x in the table's run" in goal.figures
    below = endpoint_goal(
        "v2 vs inv", with_rounds(run, [(700, 1000)] * 3), "v2", "invocations", 0.8
    )
    assert not below.met


def test_an_endpoint_goal_with_errors_in_a_round_is_not_met() -> None:
    run = [
        result("maestro", "v2", GOAL_CELL, 900, 5.0, 9.0),
        result("maestro", "invocations", GOAL_CELL, 1000, 5.0, 9.0),
    ]
    goal = endpoint_goal(
        "v2 vs inv", with_rounds(run, [(900, 1000)] * 3, errors=2), "v2", "invocations", 0.8
    )
    assert not goal.met and "6 errors" in goal.figures


def test_without_rounds_an_endpoint_goal_uses_the_tables_run() -> None:
    run = [
        result("maestro", "v2", GOAL_CELL, 900, 5.0, 9.0),
        result("maestro", "invocations", GOAL_CELL, 1000, 5.0, 9.0),
    ]
    goal = endpoint_goal("v2 vs inv", run, "v2", "invocations", 0.8)
    assert goal.met and goal.figures.startswith("0.90x (900 vs 1000 req/s)")


def test_parse_h2load_log_gives_wrks_figures() -> None:
    # h2load's log: start (µs), HTTP status, duration (µs); -1 is a stream reset.
    lines = [f"{1000 + i}\t200\t{100 + i}\n" for i in range(98)]
    lines += ["2000\t503\t5000\n", "2001\t-1\t9000\n", "a partial line\n"]
    got = parse_log(lines, seconds=8)
    assert got["requests"] == 100 and got["errors_status"] == 2
    assert got["duration_us"] == 8_000_000
    assert got["p50_us"] == 150  # the 51st of 100 sorted durations: 100..197, then 5000, 9000
    assert got["p99_us"] == 9000


def test_parse_h2load_log_without_requests_fails() -> None:
    with pytest.raises(BenchError, match="no finished request"):
        parse_log([], seconds=8)


def test_grpc_frame_is_the_length_prefixed_message() -> None:
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"


def test_grpc_message_has_one_fp64_raw_input_per_column() -> None:
    from maestro.serving.proto import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest.FromString(grpc_message(DATA, 2))
    assert request.model_name == "breast-cancer"
    assert [(i.name, i.datatype, list(i.shape)) for i in request.inputs] == [
        ("mean radius", "FP64", [2, 1]),
        ("mean texture", "FP64", [2, 1]),
    ]
    assert [np.frombuffer(raw, "<f8").tolist() for raw in request.raw_input_contents] == [
        [1.5, 3.0],
        [2.25, 4.125],
    ]
    response = pb.ModelInferResponse()
    response.outputs.add(name="predict", datatype="INT64", shape=[2])
    response.raw_output_contents.append(np.array([1, 0], dtype="<i8").tobytes())
    assert grpc_predictions(response.SerializeToString()) == [1, 0]


@pytest.mark.parametrize(("grpc_rps", "met"), [(1600, True), (1400, False)], ids=["met", "not"])
def test_the_grpc_goal_is_at_least_v2_jsons_throughput(grpc_rps: float, met: bool) -> None:
    run = full_run(maestro_rps=1500, maestro_p99=20, maestro_p50_1=0.9)
    run += [result("maestro", "grpc", cell, grpc_rps, 4.0, 15) for cell in CELLS]
    found = [g for g in goals(run, LABELS) if "gRPC ModelInfer" in g.text]
    assert len(found) == 1 and found[0].met is met
    assert found[0].figures.startswith(f"{grpc_rps / 1500:.2f}x")


def ceiling_run(invocations_rps: float, v2_rps: float) -> list[Result]:
    run = [r for r in full_run(5000, 20, 0.9) if r.server != "maestro"]
    for cell in CELLS:
        run.append(result("maestro", "invocations", cell, invocations_rps, 5.0, 20))
        run.append(result("maestro", "v2", cell, v2_rps, 5.0, 20))
    for server, rps in (("fastapi", 10_000), ("asgi", 25_000)):
        run += [result(server, p, GOAL_CELL, rps, 4.0, 9) for p in ("invocations", "v2")]
    return run


@pytest.mark.parametrize(
    ("invocations_rps", "v2_rps", "ceiling_met", "v2_met"),
    [(8000, 6400, True, True), (7900, 6400, False, True), (8000, 6300, True, False)],
    ids=["both", "under-the-ceiling-share", "v2-under-its-share"],
)
def test_the_request_path_goals_are_shares_of_the_ceiling_and_of_invocations(
    invocations_rps: float, v2_rps: float, ceiling_met: bool, v2_met: bool
) -> None:
    found = {g.text: g for g in goals(ceiling_run(invocations_rps, v2_rps), LABELS_WITH_CEILINGS)}
    ceiling = next(g for t, g in found.items() if "no-op FastAPI" in t)
    v2 = next(g for t, g in found.items() if "(JSON) at least 0.8x" in t)
    assert (ceiling.met, v2.met) == (ceiling_met, v2_met)
    assert ceiling.figures.startswith(f"{invocations_rps / 10_000:.2f}x")
    assert f"{invocations_rps / 25_000:.2f}x of no-op bare ASGI" in ceiling.figures


LABELS_WITH_CEILINGS = {**LABELS, "fastapi": "no-op FastAPI", "asgi": "no-op bare ASGI"}


def test_the_binary_body_is_what_the_server_reads_and_its_answer_reads_back() -> None:
    from maestro.serving.binary_tensors import OutputRequest, encode_response, parse_request
    from maestro.serving.outputs import Outputs

    content, headers = binary_request(DATA, 2)
    document = parse_request(content, headers["Inference-Header-Content-Length"])
    assert document["parameters"] == {"binary_data_output": True}
    assert [(i["name"], i["shape"], list(i["data"])) for i in document["inputs"]] == [
        ("mean radius", [2, 1], [1.5, 3.0]),
        ("mean texture", [2, 1], [2.25, 4.125]),
    ]
    outputs = Outputs(("predict",), (np.array([1, 0]),))
    answer, length = encode_response({"model_name": "m"}, outputs, OutputRequest(True))
    assert length is not None
    assert predictions("v2-binary", answer, {"Inference-Header-Content-Length": str(length)}) == [
        1,
        0,
    ]

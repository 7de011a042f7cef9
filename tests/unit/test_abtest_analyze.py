"""`maestro abtest analyze`: stored figures in, the operator's figures and decisions out;
bad input exits 2 naming the field."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from maestro.operators.abtest.statistics import ArmFigures, TestSettings, decide_look
from maestro.operators.api.abtest import MetricType
from maestro.operators.cli import main

pytestmark = pytest.mark.unit


def arm(n: int, total: float, squares: float | None = None) -> dict[str, Any]:
    return {"n": n, "sum": total} | ({} if squares is None else {"sumSquares": squares})


def continuous(n: int, mean: float, variance: float) -> dict[str, Any]:
    """Figures of n outcomes with this mean and sample variance."""
    return arm(n, n * mean, (n - 1) * variance + n * mean * mean)


INPUT: dict[str, Any] = {
    "tests": [
        {  # sequential: the challenger pulls ahead at the second look
            "metricType": "Proportion",
            "alpha": 0.05,
            "power": 0.8,
            "minimumDetectableEffect": 0.02,
            "higherIsBetter": True,
            "sequential": True,
            "looks": [
                {"champion": arm(1000, 100), "challenger": arm(1000, 120)},
                {"champion": arm(3000, 300), "challenger": arm(3000, 380)},
            ],
        },
        {  # fixed horizon: significant early, but it waits for its 3,841 samples per model
            "metricType": "Proportion",
            "minimumDetectableEffect": 0.02,
            "sequential": False,
            "looks": [
                {"champion": arm(1500, 150), "challenger": arm(1500, 110)},
                {"champion": arm(4000, 400), "challenger": arm(4000, 330)},
            ],
        },
        {  # latency-like: lower is better, the challenger is faster
            "metricType": "Continuous",
            "minimumDetectableEffect": 5.0,
            "higherIsBetter": False,
            "looks": [
                {"champion": continuous(1, 120.0, 0.0), "challenger": continuous(1, 110.0, 0.0)},
                {"champion": continuous(400, 120.0, 900.0),
                 "challenger": continuous(400, 108.0, 800.0)},
            ],
        },
        {  # sequential, the evidence fades: the p-value keeps its running minimum
            "metricType": "Proportion",
            "minimumDetectableEffect": 0.05,
            "looks": [
                {"champion": arm(200, 20), "challenger": arm(200, 34)},
                {"champion": arm(2000, 200), "challenger": arm(2000, 205)},
            ],
        },
    ]
}  # fmt: skip

EXPECTED = [
    ["Continue", "PromoteChallenger"],
    ["Continue", "KeepChampion"],
    ["Continue", "PromoteChallenger"],
    ["Continue", "Continue"],
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(INPUT))
    return path


def test_decisions_from_a_file(input_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["abtest", "analyze", "--input", str(input_file)], capsys)
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert [[look["decision"] for look in t["looks"]] for t in result["tests"]] == EXPECTED
    assert result["tests"][1]["looks"][0]["pValue"] < 0.05  # significant, yet it waited
    first = result["tests"][0]["looks"][1]
    assert set(first) == {"lift", "pValue", "interval", "requiredSamples", "decision"}
    assert set(first["interval"]) == {"lower", "upper", "level"}
    assert first["requiredSamples"] == 3841
    assert first["interval"]["level"] == 0.95
    assert first["lift"] == pytest.approx(380 / 3000 - 300 / 3000)


def test_the_figures_are_the_operators(
    input_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_cli(["abtest", "analyze", "--input", str(input_file)], capsys)
    look = json.loads(out)["tests"][1]["looks"][1]
    settings = TestSettings(MetricType.PROPORTION, mde=0.02, sequential=False)
    direct = decide_look(settings, ArmFigures(4000, 400), ArmFigures(4000, 330))
    assert direct.interval is not None
    assert (look["lift"], look["pValue"], look["requiredSamples"]) == (
        direct.lift,
        direct.p_value,
        direct.required_samples,
    )
    assert (look["interval"]["lower"], look["interval"]["upper"]) == (
        direct.interval.lower,
        direct.interval.upper,
    )


def test_sequential_p_values_are_the_running_minimum(
    input_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_cli(["abtest", "analyze", "--input", str(input_file)], capsys)
    fading = [look["pValue"] for look in json.loads(out)["tests"][3]["looks"]]
    settings = TestSettings(MetricType.PROPORTION, mde=0.05)
    later_alone = decide_look(settings, ArmFigures(2000, 200), ArmFigures(2000, 205)).p_value
    assert later_alone is not None
    assert fading[1] == fading[0] < later_alone


def test_too_few_outcomes_give_nulls(input_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(["abtest", "analyze", "--input", str(input_file)], capsys)
    look = json.loads(out)["tests"][2]["looks"][0]  # one outcome each: no variance yet
    assert (look["pValue"], look["interval"], look["requiredSamples"]) == (None, None, None)
    assert look["lift"] == pytest.approx(-10.0)


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(INPUT)))
    code, out, _ = run_cli(["abtest", "analyze", "--input", "-"], capsys)
    assert code == 0
    assert [[x["decision"] for x in t["looks"]] for t in json.loads(out)["tests"]] == EXPECTED


def first_look(**fields: Any) -> dict[str, Any]:
    look = {"champion": arm(100, 10), "challenger": arm(100, 12)}
    return {"tests": [{"looks": [look]} | fields]}


BAD = [
    ("not JSON", "{tests: [", "not JSON"),
    ("no tests", {"tests": []}, "tests: List should have at least 1 item"),
    ("unknown field", first_look(alfa=0.1), "tests[0].alfa: Extra inputs are not permitted"),
    ("alpha out of range", first_look(alpha=0.7), "tests[0].alpha: Input should be less than"),
    ("unknown metric type", first_look(metricType="Ratio"), "tests[0].metricType: Input should be"),
    ("negative n", {"tests": [{"looks": [{"champion": arm(-1, 0), "challenger": arm(1, 0)}]}]},
     "tests[0].looks[0].champion.n: Input should be greater than or equal to 0"),
    ("missing arm", {"tests": [{"looks": [{"champion": arm(1, 0)}]}]},
     "tests[0].looks[0].challenger: Field required"),
    ("more successes than outcomes",
     {"tests": [{"looks": [{"champion": arm(10, 11), "challenger": arm(10, 1)}]}]},
     "tests[0].looks[0].champion.sum: successes must be within 0..n (10)"),
    ("no sumSquares for Continuous", first_look(metricType="Continuous"),
     "tests[0].looks[0].champion.sumSquares: required for a Continuous metric"),
    ("impossible sumSquares",
     {"tests": [{"metricType": "Continuous", "looks": [
         {"champion": arm(4, 8.0, 15.0), "challenger": arm(4, 8.0, 16.0)}]}]},
     "tests[0].looks[0].champion.sumSquares: 15.0 is too small"),
    ("looks not cumulative",
     {"tests": [{"looks": [{"champion": arm(100, 10), "challenger": arm(100, 12)},
                           {"champion": arm(90, 10), "challenger": arm(200, 22)}]}]},
     "tests[0].looks[1].champion.n: looks are cumulative, but 90 is below the previous look's"
     " 100"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_exits_2_naming_the_field(
    doc: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    code, out, err = run_cli(["abtest", "analyze", "--input", str(path)], capsys)
    assert (code, out) == (2, "")
    assert f"error: {message}" in err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["abtest", "analyze", "--input", str(tmp_path / "none.json")], capsys)
    assert code == 2
    assert "none.json" in err


def test_help_explains_input_and_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["abtest", "analyze", "--help"], capsys)
    assert code == 0
    for word in ("--input FILE", "sumSquares", "requiredSamples", "PromoteChallenger", "exit"):
        assert word in out


def test_it_runs_on_the_core_dependencies(input_file: Path) -> None:
    """No SciPy (not a dependency), nor numpy, kopf or kubernetes, to analyze figures."""
    code = (
        "import io, sys\nfrom maestro.operators.abtest.analyze import run\n"
        f"run({str(input_file)!r}, out=io.StringIO())\nprint('\\n'.join(sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = {m.split(".")[0] for m in done.stdout.split()}
    assert not {"scipy", "numpy", "statsmodels", "kopf", "kubernetes"} & modules

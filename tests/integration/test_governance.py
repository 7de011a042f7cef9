"""Promotion through gates, rollback, alias history and the audit log, against the real
MLflow on PostgreSQL and an audit database of the test's own."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import psycopg2
import pytest
import sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from maestro.governance.audit_chain import Action
from maestro.governance.audit_log import AuditLog
from maestro.operators.cli import build_parser
from tests.integration.governance_models import SlowModel, UnfairModel

pytestmark = pytest.mark.services

FEATURES = ["f0", "f1", "f2", "f3", "group"]


@pytest.fixture
def env(
    mlflow_url: str, audit_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    # No cluster here: the actor comes from MAESTRO_ACTOR.
    values = {
        "MLFLOW_TRACKING_URI": mlflow_url,
        "MAESTRO_AUDIT_DATABASE_URL": audit_db,
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "MAESTRO_ACTOR": "alice",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MAESTRO_POLICY", raising=False)
    return values


def maestro(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run a `maestro` command in this process; its exit code, stdout and stderr."""
    parsed = build_parser().parse_args(list(args))
    code = int(parsed.handler(parsed))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """Training rows, and a held-out parquet file the gates evaluate on."""
    x, y = make_classification(
        n_samples=900, n_features=4, n_informative=3, n_redundant=1, random_state=0
    )
    frame = pd.DataFrame(x, columns=FEATURES[:4])
    frame["group"] = np.random.default_rng(0).integers(0, 2, len(frame))
    frame["target"] = y
    holdout = tmp_path_factory.mktemp("governance") / "holdout.parquet"
    frame.iloc[600:].to_parquet(holdout)
    return frame.iloc[:600], holdout


@pytest.fixture(scope="module")
def versions(mlflow_url: str, data: tuple[pd.DataFrame, Path]) -> dict[str, Any]:
    """One registered model: 1 a stump (the first champion), then a worse, a slow, an
    unfair, an incompatible and a better candidate."""
    train, _ = data
    name = f"gov-{uuid.uuid4().hex[:6]}"
    x, y = train[FEATURES], train["target"]
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(f"test-governance-{name}")
    requirements = [f"scikit-learn=={sklearn.__version__}"]
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(x, y)
    signature = infer_signature(x.head(5), y.head(5))

    def log_sklearn(estimator: Any, columns: list[str]) -> None:
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                estimator.fit(train[columns], y),
                name="model",
                signature=infer_signature(train[columns].head(5), y.head(5)),
                registered_model_name=name,
                pip_requirements=requirements,
                # MLflow's default format; the skops one refuses tree nodes unless trusted.
                serialization_format="cloudpickle",
            )

    def log_pyfunc(model: Any) -> None:
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=signature,
                registered_model_name=name,
                pip_requirements=requirements,
                code_paths=[str(Path(__file__).with_name("governance_models.py"))],
            )

    log_sklearn(DecisionTreeClassifier(max_depth=1, random_state=0), FEATURES)  # 1
    log_sklearn(DummyClassifier(strategy="most_frequent"), FEATURES)  # 2
    log_pyfunc(SlowModel(forest))  # 3
    log_pyfunc(UnfairModel(forest))  # 4
    log_sklearn(RandomForestClassifier(n_estimators=30, random_state=0), FEATURES[1:])  # 5
    log_sklearn(RandomForestClassifier(n_estimators=30, random_state=0), FEATURES)  # 6
    return {"name": name, "stump": "1", "worse": "2", "slow": "3", "unfair": "4",
            "incompatible": "5", "better": "6"}  # fmt: skip


def write_policy(path: Path, holdout: Path, approval: str = "") -> Path:
    path.write_text(
        "apiVersion: mlops.maestro.dev/v1alpha1\nkind: PromotionPolicy\n"
        "metadata: {name: test, version: '7'}\n"
        f"spec:\n  dataset: {{uri: '{holdout}', target: target}}\n"
        "  gates:\n"
        "    - {type: signature}\n"
        "    - {type: metric, metric: accuracy, minDelta: 0.0}\n"
        "    - {type: latency, p95Ms: 40, requests: 40}\n"
        "    - {type: fairness, column: group, metric: accuracy, maxGap: 0.15, minGroupSize: 20}\n"
        f"{approval}"
    )
    return path


def alias_of(mlflow_url: str, name: str) -> str:
    return str(MlflowClient(mlflow_url).get_registered_model(name).aliases["champion"])


def failed_gates(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.strip().startswith("FAIL")]


def test_promotion_through_the_gates_rollback_and_history(
    env: dict[str, str],
    versions: dict[str, Any],
    data: tuple[pd.DataFrame, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, url = versions["name"], env["MLFLOW_TRACKING_URI"]
    policy = str(write_policy(tmp_path / "policy.yaml", data[1]))

    def promote(key: str) -> tuple[int, str, str]:
        result = maestro(
            capsys, "model", "promote", name, "--version", versions[key],
            "--reason", f"try {key}", "--policy", policy,
        )  # fmt: skip
        with capsys.disabled():  # the gate figures, in the test log
            print(f"\n{key}: exit {result[0]}\n{result[1]}", end="")
        return result

    code, out, err = promote("stump")
    assert code == 0, out + err
    assert "no champion" in out and alias_of(url, name) == "1"

    # Each bad candidate fails on its own gate, with figures; the champion stays.
    code, out, _ = maestro(
        capsys, "model", "gates", name, "--version", versions["worse"], "--policy", policy
    )
    assert code == 1 and failed_gates(out) == ["metric:accuracy"], out
    for key, gate, expected in [
        ("worse", "metric:accuracy", 1),
        ("slow", "latency", 1),
        ("unfair", "fairness:group", 1),
        ("incompatible", "signature", 2),
    ]:
        code, out, err = promote(key)
        assert code == expected and failed_gates(out) == [gate], (key, out, err)
        assert alias_of(url, name) == "1"
    assert "input 'f0' (double) was removed" in out

    code, out, err = promote("better")
    assert code == 0, out + err
    assert alias_of(url, name) == versions["better"]

    code, out, err = maestro(capsys, "model", "rollback", name, "--reason", "pager went off")
    assert code == 0, err
    assert alias_of(url, name) == "1" and "back from v6 to v1" in out

    log = AuditLog(env["MAESTRO_AUDIT_DATABASE_URL"])
    moved = log.entries(subject=name, action=Action.ALIAS_MOVED)
    assert [(m.details["from"], m.details["to"], m.details["kind"]) for m in moved] == [
        (None, "1", "promote"),
        ("1", "6", "promote"),
        ("6", "1", "rollback"),
    ]
    # Five refused candidates and two promotions each recorded their gate figures.
    assert len(log.entries(subject=name, action=Action.GATES)) == 6

    def champion_at(when: Any) -> str:
        code, out, _ = maestro(capsys, "model", "history", name, "--at", when.isoformat())
        assert code == 0
        return out

    second = timedelta(microseconds=1)
    assert "no recorded version" in champion_at(moved[0].at - second)
    assert f"{name}@champion was v1 " in champion_at(moved[0].at)
    assert f"{name}@champion was v6 " in champion_at(moved[1].at + second)
    assert f"{name}@champion was v1 " in champion_at(moved[2].at)
    assert "rollback by alice (environment): pager went off" in champion_at(moved[2].at)

    code, out, _ = maestro(capsys, "model", "history", name)
    assert code == 0 and len(out.splitlines()) == 4, out
    code, out, _ = maestro(capsys, "audit", "verify")
    assert code == 0 and "audit log intact" in out, out


def test_a_distinct_approver_is_required_when_the_policy_says_so(
    env: dict[str, str],
    versions: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = versions["name"]
    policy = tmp_path / "four-eyes.yaml"
    policy.write_text(
        "apiVersion: mlops.maestro.dev/v1alpha1\nkind: PromotionPolicy\n"
        "metadata: {name: four-eyes, version: '1'}\n"
        "spec:\n  gates: [{type: signature}]\n  approval: {distinctApprover: true}\n"
    )
    args = ("model", "promote", name, "--version", "6", "--reason", "r", "--policy", str(policy))
    code, _, err = maestro(capsys, *args)
    assert code == 1 and "needs a request by someone else first" in err
    code, _, _ = maestro(capsys, "model", "request", name, "--version", "6", "--reason", "ready")
    assert code == 0
    code, _, err = maestro(capsys, *args)
    assert code == 1 and "alice requested this promotion and may not approve it" in err
    monkeypatch.setenv("MAESTRO_ACTOR", "bob")
    code, _, err = maestro(capsys, *args)
    assert code == 0, err
    approval = AuditLog(env["MAESTRO_AUDIT_DATABASE_URL"]).entries(action=Action.APPROVAL)[-1]
    assert approval.actor == {"name": "bob", "source": "environment"}
    assert approval.details["policy"]["name"] == "four-eyes"
    assert len(approval.details["policy"]["sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("nosuch-model-x", "--version", "1"), "model 'nosuch-model-x' does not exist"),
        (("{name}", "--version", "99"), "version 99 of model"),
        (("{name}", "--version", "one"), "is not a version number"),
    ],
    ids=["unknown-model", "unknown-version", "bad-version"],
)
def test_bad_input_exits_2_and_writes_nothing(
    env: dict[str, str],
    versions: dict[str, Any],
    data: tuple[pd.DataFrame, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    says: str,
) -> None:
    policy = str(write_policy(tmp_path / "policy.yaml", data[1]))
    concrete = [a.format(name=versions["name"]) for a in args]
    code, _, err = maestro(
        capsys, "model", "promote", *concrete, "--reason", "r", "--policy", policy
    )
    assert code == 2 and says in err, err
    assert AuditLog(env["MAESTRO_AUDIT_DATABASE_URL"]).entries() == []


def test_a_policy_that_does_not_parse_exits_2(
    env: dict[str, str],
    versions: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: PromotionPolicy\nspec: {gates: [{type: speed}]}\n")
    code, _, err = maestro(
        capsys, "model", "promote", versions["name"], "--version", "6", "--reason", "r",
        "--policy", str(bad),
    )  # fmt: skip
    assert code == 2 and "bad.yaml is invalid" in err and "spec.gates.0" in err


def test_a_registry_that_is_down_changes_nothing(
    env: dict[str, str],
    data: tuple[pd.DataFrame, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    policy = str(write_policy(tmp_path / "policy.yaml", data[1]))
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    code, _, err = maestro(
        capsys, "model", "promote", "iris", "--version", "1", "--reason", "r", "--policy", policy
    )
    assert code == 3 and "nothing was changed" in err, err
    # The process-wide MLflow URIs are as they were (other code in the process uses them).
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert AuditLog(env["MAESTRO_AUDIT_DATABASE_URL"]).entries() == []


def tampered(audit_db: str, sql: str) -> list[str]:
    log = AuditLog(audit_db)
    for version in "12345":
        log.append({"name": "alice", "source": "os"}, Action.APPROVAL, "m", {"version": version})
    with psycopg2.connect(audit_db) as conn, conn.cursor() as cur:
        cur.execute(sql)
    return [str(v) for v in log.entries()]


@pytest.mark.parametrize(
    ("sql", "finding"),
    [
        (
            'UPDATE maestro_audit SET details = \'{"version": "9"}\' WHERE seq = 3',
            "EDITED: entry 3 (approval) does not match its hash",
        ),
        ("DELETE FROM maestro_audit WHERE seq = 2", "REMOVED: the entry before 3 (approval)"),
        (
            "UPDATE maestro_audit SET seq = -seq WHERE seq IN (2, 4);"
            "UPDATE maestro_audit SET seq = CASE seq WHEN -2 THEN 4 ELSE 2 END WHERE seq < 0",
            "REORDERED: entry 2 (approval) follows entry 3, not 1",
        ),
    ],
    ids=["edited", "removed", "swapped"],
)
def test_audit_verify_names_a_tampered_entry(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], sql: str, finding: str
) -> None:
    tampered(env["MAESTRO_AUDIT_DATABASE_URL"], sql)
    code, out, err = maestro(capsys, "audit", "verify")
    assert code == 1 and "audit log BROKEN" in out
    assert finding in err.splitlines()[0], err

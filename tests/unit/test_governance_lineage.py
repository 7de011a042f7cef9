"""`maestro lineage` renderers against golden files (tests/golden/lineage/), their escaping,
and the pure matching of ModelDeployment statuses to a version.

Regenerate after an intended change with MAESTRO_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from maestro.governance.lineage import to_dot, to_json, to_mermaid
from maestro.governance.lineage_cluster import serving_revisions
from maestro.governance.lineage_model import (
    CodeVersion,
    Dataset,
    Deployments,
    Lineage,
    ModelVersion,
    Role,
    Serving,
    Training,
)
from maestro.training import contract

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "lineage"
RENDERERS: dict[str, Callable[[Lineage], str]] = {
    "json": to_json,
    "mmd": to_mermaid,
    "dot": to_dot,
}

MODEL = ModelVersion(
    name="iris",
    version="3",
    source="models:/m-0f1e2d3c4b5a",
    run_id="c0ffee00c0ffee00c0ffee00c0ffee00",
    status="READY",
    created_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    aliases=("champion", "staging"),
    tags={"team": "fraud"},
)
FULL = Lineage(
    dataset=Dataset(
        uri="s3://data/iris.parquet",
        version="v1",
        name="iris.parquet@v1",
        digest="a1b2c3d4",
        source_type="s3",
    ),
    feature_service="iris_fs",
    training=Training(
        run_id="c0ffee00c0ffee00c0ffee00c0ffee00",
        run_name="trial-4",
        experiment_id="7",
        status="FINISHED",
        trainingrun="ml/iris-train",
        trainingrun_uid="0b7c5a1e-3f4d-4c1b-9a2e-5d6f7a8b9c0d",
        parent_run_id="feed0000feed0000feed0000feed0000",
        lineage_run_id="feed0000feed0000feed0000feed0000",
        user="trainer",
        params={"max_depth": "4", "n_estimators": "50"},
        tags={contract.TAG_TRAININGRUN: "ml/iris-train", contract.TAG_TRIAL_NUMBER: "4"},
    ),
    code=CodeVersion(git_commit="9fceb02d0ae598e95dc970b74767f19372d61af8", source_name="train"),
    model=MODEL,
    deployments=Deployments(
        known=True,
        serving=(
            Serving(
                namespace="ml",
                deployment="iris",
                role=Role.STABLE,
                revision="r-5d8f",
                model_uri="models:/iris/3",
                phase="Progressing",
            ),
            Serving(
                namespace="shop",
                deployment="iris-edge",
                role=Role.CANARY,
                revision="r-77aa",
                model_uri="models:/iris/3",
                phase="Progressing",
                canary_weight=20,
            ),
        ),
    ),
)
# What a version registered by hand shows, with no kubeconfig at hand.
BARE = Lineage(
    model=ModelVersion(name="iris", version="1", source="s3://models/iris"),
    deployments=Deployments(known=False, reason="no kubeconfig found (looked for ~/.kube/config)"),
)
# The version's run was deleted, and no ModelDeployment runs it.
RUN_GONE = Lineage(
    model=MODEL.model_copy(update={"aliases": ()}),
    deployments=Deployments(known=True),
)
CASES = {"full": FULL, "bare": BARE, "run-gone": RUN_GONE}


@pytest.mark.parametrize("ext", RENDERERS)
@pytest.mark.parametrize("case", CASES)
def test_render_matches_golden(case: str, ext: str) -> None:
    text = RENDERERS[ext](CASES[case])
    path = GOLDEN / f"{case}.{ext}"
    if os.environ.get("MAESTRO_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with MAESTRO_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{case} differs from {path}"


@pytest.mark.parametrize("case", CASES)
def test_json_holds_every_fact(case: str) -> None:
    assert Lineage.model_validate(json.loads(to_json(CASES[case]))) == CASES[case]


# --- escaping ---------------------------------------------------------------------------
AFTER_BREAK = "next line # 50% <b>bold</b> & C:\\new `x` %% end"
HOSTILE = f'say "hi"\n{AFTER_BREAK}'
NASTY = Lineage(
    dataset=Dataset(uri=HOSTILE, digest="d\r\ne"),
    feature_service='fs"]; evil --> x',
    training=Training(run_id="r1", lineage_run_id="r1", params={"query": HOSTILE, "tab": "a\tb"}),
    model=ModelVersion(name='my "model"', version="2", aliases=("a\nb",)),
    deployments=Deployments(known=False, reason='forbidden: "list" at\nline 2\x00'),
)
# Every line either format may hold: a label that broke out of its string fails to match.
MERMAID_NODE = re.compile(r'    (\w+)\["([^"\n]*)"\]')
MERMAID_OTHER = re.compile(r"graph LR|    \w+ -(->|\.->) \w+|    style \w+ stroke-dasharray: 5 5")
DOT_NODE = re.compile(r'    (\w+) \[label="((?:[^"\\\n]|\\.)*)"(?:, style=dashed)?\];')
DOT_OTHER = re.compile(
    r"digraph lineage \{|    rankdir=LR;|    node \[shape=box\];|"
    r"    \w+ -> \w+( \[style=dashed\])?;|\}"
)


def mermaid_lines(label: str) -> list[str]:
    """What Mermaid shows: `<br/>` breaks lines, `#<code>;` is a character."""
    return [re.sub(r"#(\d+);", lambda m: chr(int(m[1])), part) for part in label.split("<br/>")]


def dot_lines(label: str) -> list[str]:
    """What Graphviz shows: `\\n` breaks lines, `\\"` is a quote, `\\\\` a backslash."""
    lines, current, chars = [], "", iter(label)
    for c in chars:
        if c != "\\":
            current += c
        elif (escaped := next(chars)) == "n":
            lines.append(current)
            current = ""
        else:
            current += escaped
    return [*lines, current]


FORMATS = [
    pytest.param(to_mermaid, MERMAID_NODE, MERMAID_OTHER, mermaid_lines, id="mermaid"),
    pytest.param(to_dot, DOT_NODE, DOT_OTHER, dot_lines, id="dot"),
]


def labels(
    text: str, node: re.Pattern[str], other: re.Pattern[str], parse: Callable[[str], list[str]]
) -> dict[str, list[str]]:
    """Each node's label as the tool shows it, line by line."""
    found = {}
    for line in text.splitlines():
        if match := node.fullmatch(line):
            found[match[1]] = parse(match[2])
        else:
            assert other.fullmatch(line), f"not a line of the graph: {line!r}"
    return found


@pytest.mark.parametrize(("render", "node", "other", "parse"), FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_golden_cases_are_well_formed(
    case: str,
    render: Callable[[Lineage], str],
    node: re.Pattern[str],
    other: re.Pattern[str],
    parse: Callable[[str], list[str]],
) -> None:
    assert "model" in labels(render(CASES[case]), node, other, parse)


@pytest.mark.parametrize(("render", "node", "other", "parse"), FORMATS)
def test_labels_are_escaped_and_read_back_unchanged(
    render: Callable[[Lineage], str],
    node: re.Pattern[str],
    other: re.Pattern[str],
    parse: Callable[[str], list[str]],
) -> None:
    assert labels(render(NASTY), node, other, parse) == {
        "dataset": ["dataset", 'say "hi"', AFTER_BREAK, "digest d", "e"],
        "features": ["feature service", 'fs"]; evil --> x'],
        "training": ["training run", "MLflow run r1", 'query=say "hi"', AFTER_BREAK, "tab=a b"],
        "model": ["model version", 'my "model" v2', "@a", "b"],
        "deployments": ["deployments unknown", 'forbidden: "list" at', "line 2\ufffd"],
    }


def test_mermaid_labels_hold_no_markup_quote_or_comment() -> None:
    for line in to_mermaid(NASTY).splitlines():
        if match := MERMAID_NODE.fullmatch(line):
            label = match[2].replace("<br/>", "")
            assert not set(label) & set('"<>&\\`%'), label
            assert re.fullmatch(r"([^#]|#\d+;)*", label), label


def test_json_round_trips_hostile_text() -> None:
    assert Lineage.model_validate(json.loads(to_json(NASTY))) == NASTY


# --- which ModelDeployments run the version ---------------------------------------------
def md(namespace: str, name: str, status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"namespace": namespace, "name": name}}
    if status is not None:
        obj["status"] = status
    return obj


def test_serving_revisions_match_stable_canary_and_previous_uris() -> None:
    objects = [
        md(
            "b",
            "blue-green",
            {
                "phase": "Available",
                "stableRevision": "r2",
                "stableModelUri": "models:/iris/4",
                "previousRevision": "r1",
                "previousModelUri": "models:/iris/3",
            },
        ),
        md(
            "a",
            "canary",
            {
                "phase": "Progressing",
                "stableRevision": "r1",
                "stableModelUri": "models:/iris/3",
                "canaryRevision": "r2",
                "canaryModelUri": "models:/iris/3x",
                "canaryWeight": 10,
            },
        ),
        md(
            "a",
            "rollout",
            {
                "stableRevision": "r0",
                "stableModelUri": "models:/iris/2",
                "canaryRevision": "r9",
                "canaryModelUri": "models:/m-abc",
                "canaryWeight": 50,
            },
        ),
        md("a", "new", None),
        md("c", "other-model", {"stableModelUri": "models:/iris-v2/3"}),
    ]
    found = serving_revisions(objects, {"models:/iris/3", "models:/m-abc"})
    assert [(s.namespace, s.deployment, s.role, s.revision, s.canary_weight) for s in found] == [
        ("a", "canary", Role.STABLE, "r1", None),
        ("a", "rollout", Role.CANARY, "r9", 50),
        ("b", "blue-green", Role.PREVIOUS, "r1", None),
    ]
    assert found[0].phase == "Progressing" and found[2].model_uri == "models:/iris/3"


def test_an_old_status_with_fields_this_version_lacks_still_matches() -> None:
    status = {"stableModelUri": "models:/iris/3", "stableRevision": "r1", "somethingNew": 1}
    (found,) = serving_revisions([md("a", "x", status)], {"models:/iris/3"})
    assert found.revision == "r1" and found.phase is None


def test_importing_the_command_loads_neither_mlflow_nor_kubernetes() -> None:
    """`maestro --help` imports the command's module; the clients load when it runs."""
    code = "import sys, maestro.governance.lineage\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not {"mlflow", "kubernetes", "kopf"} & {m.split(".")[0] for m in out.stdout.split()}

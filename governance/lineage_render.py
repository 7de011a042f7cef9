"""`maestro lineage` output: JSON, a Mermaid flowchart and a Graphviz digraph of a Lineage.

Pure: each renderer is a function of the Lineage alone. Both graphs come from one node
list (`graph`), so they cannot drift apart; only the syntax and the escaping differ.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from maestro.governance.lineage_model import Lineage, Role


@dataclass(frozen=True)
class Node:
    id: str  # fixed identifiers only: no registry or cluster text ever lands here
    lines: tuple[str, ...]
    dashed: bool = False  # a placeholder (unknown or none), not a fact


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    dashed: bool = False


def to_json(lineage: Lineage) -> str:
    return json.dumps(lineage.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def graph(lineage: Lineage) -> tuple[list[Node], list[Edge]]:
    """The lineage chain dataset -> features -> training run -> model version, then one
    node per deployment revision (or one placeholder saying none or unknown)."""
    chain: list[Node] = []
    if lineage.dataset is not None:
        data = lineage.dataset
        chain.append(
            Node(
                "dataset",
                (
                    "dataset",
                    data.uri or data.name or "(no URI recorded)",
                    *optional("version", data.version),
                    *optional("digest", data.digest),
                ),
            )
        )
    if lineage.feature_service:
        chain.append(Node("features", ("feature service", lineage.feature_service)))
    run = lineage.training
    if run is not None:
        lines = [
            "training run",
            *optional("TrainingRun", run.trainingrun),
            f"MLflow run {run.run_id}",
            *optional("commit", lineage.code.git_commit),
            *(f"{key}={value}" for key, value in sorted(run.params.items())),
        ]
        chain.append(Node("training", tuple(lines)))
    elif lineage.model.run_id:
        # The version names a run that MLflow no longer has: say so rather than skip it.
        missing = ("training run", f"MLflow run {lineage.model.run_id}", "(not found in MLflow)")
        chain.append(Node("training", missing, dashed=True))
    model = lineage.model
    aliases = ", ".join(f"@{alias}" for alias in model.aliases)
    chain.append(
        Node("model", ("model version", f"{model.name} v{model.version}", *optional("", aliases)))
    )
    edges = [Edge(a.id, b.id) for a, b in pairwise(chain)]
    nodes = list(chain)
    deployments = lineage.deployments
    if not deployments.known:
        reason = deployments.reason or "no reason given"
        nodes.append(Node("deployments", ("deployments unknown", reason), dashed=True))
        edges.append(Edge("model", "deployments", dashed=True))
    elif not deployments.serving:
        nodes.append(Node("deployments", ("no ModelDeployment serves it",), dashed=True))
        edges.append(Edge("model", "deployments", dashed=True))
    for i, serving in enumerate(deployments.serving):
        weight = serving.canary_weight if serving.role is Role.CANARY else None
        lines = [
            f"ModelDeployment {serving.namespace}/{serving.deployment}",
            f"{serving.role.value} revision {serving.revision or '(unnamed)'}",
            *([f"{weight}% of traffic"] if weight is not None else []),
            *optional("phase", serving.phase),
        ]
        nodes.append(Node(f"serving{i}", tuple(lines)))
        edges.append(Edge("model", f"serving{i}"))
    return nodes, edges


def optional(prefix: str, value: str | None) -> list[str]:
    if not value:
        return []
    return [f"{prefix} {value}" if prefix else value]


def to_mermaid(lineage: Lineage) -> str:
    nodes, edges = graph(lineage)
    out = ["graph LR"]
    out += [f'    {n.id}["{mermaid_label(n.lines)}"]' for n in nodes]
    out += [f"    {e.source} {'-.->' if e.dashed else '-->'} {e.target}" for e in edges]
    out += [f"    style {n.id} stroke-dasharray: 5 5" for n in nodes if n.dashed]
    return "\n".join(out) + "\n"


def to_dot(lineage: Lineage) -> str:
    nodes, edges = graph(lineage)
    out = ["digraph lineage {", "    rankdir=LR;", "    node [shape=box];"]
    for n in nodes:
        style = ", style=dashed" if n.dashed else ""
        out.append(f'    {n.id} [label="{dot_label(n.lines)}"{style}];')
    for e in edges:
        style = " [style=dashed]" if e.dashed else ""
        out.append(f"    {e.source} -> {e.target}{style};")
    out.append("}")
    return "\n".join(out) + "\n"


# --- escaping ---------------------------------------------------------------------------
# Mermaid reads `#<code>;` as a character inside a quoted label; a raw `"` would end the
# label, `#` would start a code, `<`/`>`/`&` would reach its HTML labels as markup, `\`
# followed by n reads as a line break, a backtick opens a markdown string and `%%` a comment.
_MERMAID = str.maketrans({c: f"#{ord(c)};" for c in '#"<>&\\`%'})


def split_lines(lines: Iterable[str]) -> list[str]:
    """Each value's own line breaks become line breaks of the label; other control
    characters, which neither format can show, become U+FFFD."""
    parts = [part for line in lines for part in (line.splitlines() or [""])]
    return [
        "".join(
            " " if c == "\t" else "\ufffd" if unicodedata.category(c) == "Cc" else c for c in part
        )
        for part in parts
    ]


def mermaid_label(lines: Iterable[str]) -> str:
    return "<br/>".join(part.translate(_MERMAID) for part in split_lines(lines))


def dot_label(lines: Iterable[str]) -> str:
    # In a DOT string a raw `"` ends the string and a backslash starts a label escape such
    # as \N (the node's name) or \l: backslashes are doubled before quotes are escaped.
    return "\\n".join(part.replace("\\", "\\\\").replace('"', '\\"') for part in split_lines(lines))

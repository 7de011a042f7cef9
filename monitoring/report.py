"""The HTML report of a drift run, rendered from its result alone (pure).

A scheduled run never reads the reference data again (its statistics are cached), so the
report shows what the run computed: each column's test, score, threshold and verdict.
`maestro drift check --report` writes Evidently's own, fuller report when the reference
data is at hand.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from maestro.monitoring.contract import DriftResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.drifted{color:#b00020;font-weight:600}.Ok{color:#1b5e20}.Warning{color:#e65100}.Critical{color:#b00020}
"""


def render_html(result: DriftResult, title: str, facts: Mapping[str, str]) -> str:
    esc = html.escape
    rows = "\n".join(
        "<tr{cls}><td>{name}</td><td>{test}</td><td>{score}</td><td>{thr:g}</td><td>{v}</td></tr>".format(
            cls=' class="drifted"' if c.drifted else "",
            name=esc(c.name),
            test=esc(c.test),
            score="n/a" if c.score is None else f"{c.score:.6g}",
            thr=c.threshold,
            v="drifted" if c.drifted else "stable",
        )
        for c in result.columns
    )
    details = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_STYLE}</style></head>
<body><h1>{esc(title)}</h1>
<p class="{result.severity.value}">Severity <b>{result.severity.value}</b>:
{len(result.drifted_columns)} of {len(result.columns)} columns drifted
(share {result.drift_share:.3f}).</p>
<table>{details}
<tr><th>reference rows</th><td>{result.reference_rows}</td></tr>
<tr><th>current rows</th><td>{result.current_rows}</td></tr></table>
<h2>Columns</h2>
<table><tr><th>column</th><th>test</th><th>score</th><th>threshold</th><th>verdict</th></tr>
{rows}
</table></body></html>
"""

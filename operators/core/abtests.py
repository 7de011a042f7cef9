"""What a running ABTest asks of its ModelDeployment, read by both kinds' controllers: the
ABTest controller writes it into the test's status, the ModelDeployment controller renders
it (the challenger's revision beside the champion's, the split in the serving pods). Pure:
core.gather.running_split reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maestro.operators.api.abtest import ABTestPhase


@dataclass(frozen=True)
class SplitPlan:
    """The split a Running ABTest wants: its name and key (its uid: signs request ids), the
    resolved challenger model, the challenger's traffic percent and the Sticky header."""

    name: str
    key: str
    challenger_uri: str
    challenger_percent: float
    split_header: str | None
    created: str = ""

    @property
    def test_id(self) -> str:
        """Short id of the test, as the serving pods label its metrics (serving.abtest)."""
        return self.key.replace("-", "")[:8]

    @property
    def revision(self) -> str:
        """The challenger revision's name: short, so `<deployment>-<revision>` fits a label."""
        return f"ab-{self.test_id}"


def split_plan(abtest: Mapping[str, Any]) -> SplitPlan | None:
    """The split of an ABTest that is Running with its challenger resolved; None otherwise."""
    status = abtest.get("status") or {}
    spec = abtest.get("spec") or {}
    uri = status.get("challengerModelUri")
    if status.get("phase") != ABTestPhase.RUNNING.value or not isinstance(uri, str) or not uri:
        return None
    share = (status.get("challenger") or {}).get("trafficPercent")
    split = spec.get("split") or {}
    meta = abtest["metadata"]
    return SplitPlan(
        name=meta["name"],
        key=meta["uid"],
        challenger_uri=uri,
        challenger_percent=float(share if share is not None else spec.get("trafficPercent", 50)),
        split_header=split.get("key") if split.get("mode") == "Sticky" else None,
        created=meta.get("creationTimestamp", ""),
    )

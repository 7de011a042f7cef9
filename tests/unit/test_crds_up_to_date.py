"""The committed manifests/crds is exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.operators.api import crdgen

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[2] / "manifests" / "crds"


def test_committed_crds_match_the_models(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    generated = {p.name: p.read_text() for p in sorted(tmp_path.glob("*.yaml"))}
    committed = {p.name: p.read_text() for p in sorted(COMMITTED.glob("*.yaml"))}
    assert generated == committed, (
        "manifests/crds is out of date with operators/api: run `make manifests`\n"
        + crdgen.diff(COMMITTED)
    )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert crdgen.render() == crdgen.render()
    crdgen.write(tmp_path)
    assert crdgen.diff(tmp_path) == ""


def test_stale_generated_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "mlops.maestro.dev_oldkinds.yaml").write_text("stale")
    (tmp_path / "notes.yaml").write_text("kept")
    crdgen.write(tmp_path)
    assert not (tmp_path / "mlops.maestro.dev_oldkinds.yaml").exists()
    assert (tmp_path / "notes.yaml").read_text() == "kept"

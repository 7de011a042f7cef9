"""`make demo` seeds the Vault secret that the example ModelDeployment names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maestro.localplatform.demo import EXAMPLE_SECRET

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "modeldeployment.yaml"


def test_the_demo_seeds_the_secret_the_example_reads() -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    assert [(s["vaultPath"], s["key"]) for s in spec["secrets"]] == [EXAMPLE_SECRET]

"""The pydantic -> structural OpenAPI conversion, and the CRDs it produces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import BaseModel, Field, WithJsonSchema

from maestro.operators.api import KINDS, Resource
from maestro.operators.api.crdgen import crd_for, kopf_peering_crd, render
from maestro.operators.api.schema import SchemaError, model_schema, to_structural

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}[*]")


def schema_of(kind: type[Resource]) -> dict[str, Any]:
    root: dict[str, Any] = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.INFO.kind)
def test_schema_is_structural(kind: type[Resource]) -> None:
    for path, node in walk(schema_of(kind)):
        assert not {"$ref", "$defs", "title", "allOf", "oneOf", "const"} & node.keys(), path
        assert node.get("type") != "null", path
        assert node.get("additionalProperties") is not False, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), path
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.INFO.kind)
def test_every_field_has_a_description(kind: type[Resource]) -> None:
    for path, node in walk(schema_of(kind)["properties"]["spec"], ".spec"):
        if path.endswith("[*]"):
            continue
        assert node.get("description"), path
    for path, node in walk(schema_of(kind)["properties"]["status"], ".status"):
        if path.endswith("[*]"):
            continue
        assert node.get("description"), path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.INFO.kind)
def test_crd_has_status_subresource_columns_and_short_name(kind: type[Resource]) -> None:
    crd = crd_for(kind)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Phase", "Ready", "Age"} <= set(columns)
    assert crd["spec"]["names"]["categories"] == ["maestro"]
    assert crd["spec"]["names"]["shortNames"] == kind.INFO.short_names
    status = schema_of(kind)["properties"]["status"]["properties"]
    assert {"phase", "observedGeneration", "conditions"} <= status.keys()
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason"}
    # Unknown spec fields must be pruned/rejected, never preserved wholesale.
    assert "x-kubernetes-preserve-unknown-fields" not in schema_of(kind)["properties"]["spec"]


def test_status_has_no_defaults() -> None:
    for kind in KINDS:
        for path, node in walk(schema_of(kind)["properties"]["status"], ".status"):
            assert "default" not in node, path


def test_cel_rules_that_iterate_are_bounded() -> None:
    # The API server rejects CRDs whose CEL cost it cannot bound; lists and maps must be capped.
    for kind in KINDS:
        for path, node in walk(schema_of(kind)):
            if node.get("type") == "array":
                assert "maxItems" in node, path
            if node.get("type") == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, path


class Inner(BaseModel):
    """An inner object."""

    n: int = Field(default=1, description="A number.")


class Sample(BaseModel):
    """A sample."""

    required: str = Field(description="Required.")
    optional: int | None = Field(default=None, gt=0, description="Optional, positive.")
    inner: Inner = Field(default_factory=Inner, description="Inner, defaulted.")
    maybe_inner: Inner | None = Field(default=None, description="Optional inner.")
    items: list[int] = Field(default_factory=lambda: [1, 2], description="Listed default.")
    empty: list[int] = Field(default_factory=list, description="No default emitted.")


def test_conversion_inlines_and_drops_nullable_unions() -> None:
    schema = model_schema(Sample)
    props = schema["properties"]
    assert schema["required"] == ["required"]
    assert props["optional"] == {
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
        "description": "Optional, positive.",
    }
    assert props["inner"]["default"] == {"n": 1}
    assert props["inner"]["description"] == "Inner, defaulted."
    assert props["inner"]["properties"]["n"]["default"] == 1
    assert props["maybe_inner"]["type"] == "object" and "default" not in props["maybe_inner"]
    assert props["items"]["default"] == [1, 2]
    assert "default" not in props["empty"]
    assert "title" not in yaml.safe_dump(schema)


def test_status_conversion_drops_defaults() -> None:
    schema = model_schema(Sample, keep_defaults=False)
    assert all("default" not in node for _, node in walk(schema))


def test_real_unions_are_refused() -> None:
    class Union(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match="union"):
        model_schema(Union)


def test_int_or_string_union_is_allowed() -> None:
    class Quantity(BaseModel):
        value: Annotated[
            int | str,
            WithJsonSchema(
                {
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True,
                }
            ),
        ]

    assert model_schema(Quantity)["properties"]["value"]["x-kubernetes-int-or-string"] is True


def test_unknown_keywords_are_refused() -> None:
    with pytest.raises(SchemaError, match="uniqueItems"):
        to_structural({"type": "array", "items": {"type": "string"}, "uniqueItems": True})


def test_kopf_peering_crds_preserve_status() -> None:
    for cluster_scoped in (True, False):
        crd = kopf_peering_crd(cluster_scoped=cluster_scoped)
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert "kopf.dev_clusterkopfpeerings.yaml" in render()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.INFO.kind)
def test_example_parses_into_the_model(kind: type[Resource]) -> None:
    doc = yaml.safe_load((EXAMPLES / f"{kind.INFO.singular}.yaml").read_text())
    resource = kind.model_validate(doc)
    assert resource.kind == kind.INFO.kind

"""Turn pydantic JSON Schema into the structural OpenAPI v3 subset Kubernetes accepts.

Pydantic emits JSON Schema 2020-12: `$ref`/`$defs`, `anyOf: [X, {type: null}]` for optional
fields, `title`s, `additionalProperties: false` and numeric `exclusiveMinimum`. A CRD needs a
structural schema: everything inlined, no nullable unions, OpenAPI 3.0 keywords only. Unknown
keywords raise instead of being dropped, so a new pydantic feature cannot slip an invalid or
silently ignored keyword into a CRD.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

JsonObject = dict[str, Any]

# Keywords of apiextensions.k8s.io/v1 JSONSchemaProps that the generator may emit.
ALLOWED_KEYWORDS = frozenset(
    {
        "description",
        "type",
        "format",
        "default",
        "enum",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "maxProperties",
        "minProperties",
        "multipleOf",
        "required",
        "items",
        "properties",
        "additionalProperties",
        "anyOf",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
    }
)
DROPPED_KEYWORDS = frozenset({"title", "$defs", "examples"})


class SchemaError(ValueError):
    """The pydantic schema uses something a structural CRD schema cannot express."""


class KubernetesJsonSchema(GenerateJsonSchema):
    """Emit API-server defaults for fields declared with a default_factory.

    Pydantic leaves such defaults out of the schema. A nested model's default is its full
    dump; a non-empty list is kept verbatim and an empty list or map is left out because
    "absent" already means empty.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        value = factory()  # type: ignore[call-arg]
        inner = self.generate_inner(schema["schema"])
        if isinstance(value, BaseModel):
            # Spelled out in full: the API server checks a default against the CEL rules
            # as written, before nested defaults would fill it in.
            dumped = value.model_dump(by_alias=True, mode="json", exclude_none=True)
            return {**inner, "default": dumped}
        if isinstance(value, list | dict) and not value:
            return inner
        return {**inner, "default": self.encode_default(value)}


def model_schema(model: type[BaseModel], *, keep_defaults: bool = True) -> JsonObject:
    """The structural OpenAPI v3 schema of a pydantic model."""
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=KubernetesJsonSchema
    )
    return to_structural(raw, keep_defaults=keep_defaults)


def to_structural(schema: JsonObject, *, keep_defaults: bool = True) -> JsonObject:
    defs: dict[str, JsonObject] = schema.get("$defs", {})
    return _convert(schema, defs, keep_defaults=keep_defaults, path="")


def _resolve(ref: str, defs: dict[str, JsonObject]) -> JsonObject:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
        raise SchemaError(f"unresolvable $ref {ref!r}")
    return defs[ref[len(prefix) :]]


def _inline(node: JsonObject, defs: dict[str, JsonObject], path: str) -> JsonObject:
    """Replace $ref / allOf-of-one-$ref / optional unions by the schema they stand for."""
    node = dict(node)
    if "$ref" in node:
        target = _resolve(node.pop("$ref"), defs)
        # The referencing field's own keywords (description, default) win over the target's.
        node = {**_inline(target, defs, path), **node}
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{path or '<root>'}: allOf with {len(parts)} parts")
        node = {**_inline(parts[0], defs, path), **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) != 1:
            raise SchemaError(
                f"{path or '<root>'}: union of {len(options)} types is not structural;"
                " use one type, int-or-string or preserve-unknown-fields"
            )
        del node["anyOf"]
        node = {**_inline(options[0], defs, path), **node}
    if node.get("default", 0) is None:
        del node["default"]
    return node


def _convert(
    node: JsonObject, defs: dict[str, JsonObject], *, keep_defaults: bool, path: str
) -> JsonObject:
    node = _inline(node, defs, path)
    out: JsonObject = {}
    for key, value in node.items():
        if key in DROPPED_KEYWORDS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "default" and not keep_defaults:
            continue
        elif key == "additionalProperties" and value is False:
            # Structural schemas forbid `false`; pruning plus strict field validation already
            # reject unknown fields of objects that list their properties.
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {
                name: _convert(sub, defs, keep_defaults=keep_defaults, path=f"{path}.{name}")
                for name, sub in value.items()
            }
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _convert(value, defs, keep_defaults=keep_defaults, path=f"{path}[*]")
        elif key in ALLOWED_KEYWORDS:
            out[key] = copy.deepcopy(value)
        else:
            raise SchemaError(f"{path or '<root>'}: keyword {key!r} is not allowed in a CRD schema")
    if "properties" in out and "additionalProperties" in out:
        raise SchemaError(f"{path or '<root>'}: properties and additionalProperties together")
    return out

"""``bertzoo spec --schema``: the JSON Schema of ModelSpec with every registered component's options.

``jsonschema`` is not a dependency, so the schema is checked with a small validator written
here for exactly the keywords the schema uses (the test fails if the schema starts using
another keyword, rather than silently ignoring it). If ``jsonschema`` is installed it is used too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bertzoo.cli.spec import model_spec_schema
from bertzoo.discovery import get_registry
from bertzoo.factory import resolve_spec

ANNOTATIONS = {"title", "description", "default", "$schema", "examples"}
KEYWORDS = {"type", "properties", "required", "additionalProperties", "anyOf", "oneOf", "$ref", "$defs", "enum",
            "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxProperties", "items",
            "propertyNames", "pattern"} | ANNOTATIONS
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def errors(schema: dict[str, Any], value: Any, root: dict[str, Any], path: str = "") -> list[str]:
    """Validation errors of ``value`` against ``schema`` (the subset of draft 2020-12 in KEYWORDS)."""
    unknown = set(schema) - KEYWORDS
    assert not unknown, f"schema at {path or '<root>'} uses keywords the test validator lacks: {unknown}"
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return errors(node, value, root, path)
    out: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        ok = any(
            (k == "integer" and isinstance(value, int) and not isinstance(value, bool))
            or (k == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (k in TYPES and isinstance(value, TYPES[k]) and not (k != "boolean" and isinstance(value, bool)))
            for k in kinds
        )
        if not ok:
            return [f"{path}: {value!r} is not of type {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: {value!r} != {schema['const']!r}")
    for key, test in (("minimum", lambda v, b: v >= b), ("maximum", lambda v, b: v <= b),
                      ("exclusiveMinimum", lambda v, b: v > b), ("exclusiveMaximum", lambda v, b: v < b)):
        if key in schema and isinstance(value, (int, float)) and not test(value, schema[key]):
            out.append(f"{path}: {value!r} violates {key} {schema[key]}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}.{r}: required" for r in schema.get("required", []) if r not in value]
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            out.append(f"{path}: more than {schema['maxProperties']} properties")
        for key, item in value.items():
            if key in props:
                out += errors(props[key], item, root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}.{key}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(schema["additionalProperties"], item, root, f"{path}.{key}")
            if "propertyNames" in schema:
                out += errors(schema["propertyNames"], key, root, f"{path}.<{key}>")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(schema["items"], item, root, f"{path}[{i}]")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            passing = sum(not errors(sub, value, root, path) for sub in schema[key])
            if passing == 0 or (key == "oneOf" and passing > 1):
                out.append(f"{path}: {value!r} matches {passing} of the {key} alternatives")
    return out


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return model_spec_schema()


def validate(schema: dict[str, Any], data: dict[str, Any]) -> list[str]:
    found = errors(schema, data, schema)
    try:
        import jsonschema
    except ImportError:
        return found
    theirs = sorted(e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert bool(theirs) == bool(found), (theirs, found)
    return found


def test_real_specs_validate(schema: dict[str, Any]) -> None:
    for preset in ("bert-tiny", "minilm-l6-h384"):
        assert validate(schema, resolve_spec(preset).to_dict()) == []
    spec = resolve_spec("bert-tiny", {"attention": "sdpa", "head": "sequence-classification", "num_labels": 3})
    assert validate(schema, spec.to_dict()) == []
    assert validate(schema, {"components": {"attention": "eager", "pooler": None, "head": "masked-lm"}}) == []


def test_wrong_specs_are_flagged_where_they_are_wrong(schema: dict[str, Any]) -> None:
    assert any(".hidden_size" in e for e in validate(schema, {"hidden_size": "big"}))
    assert validate(schema, {"hiden_size": 3})  # extra="forbid"
    assert validate(schema, {"components": {"attention": "no-such-attention"}})
    bad_option = {"components": {"head": {"name": "sequence-classification", "options": {"num_labels": 0}}}}
    assert validate(schema, bad_option)
    misspelt = {"components": {"head": {"name": "sequence-classification", "options": {"num_label": 3}}}}
    assert validate(schema, misspelt)
    assert validate(schema, {"components": {"attention": {"name": "auto", "options": {"x": 1}}}})


def test_every_registered_component_and_options_model_appears(schema: dict[str, Any]) -> None:
    components = schema["$defs"]["Components"]["properties"]
    registry = get_registry()
    for kind in ("embedding", "attention", "layer", "pooler", "head"):
        names = {n for v in components[kind]["oneOf"] for n in v.get("enum", [])}
        assert set(registry.list_components(kind)) <= names, kind
        for record in registry.records(kind):
            if record.options is not None:
                assert f"{kind}:{record.full_name}:options" in schema["$defs"]
    options = schema["$defs"]["head:bertzoo:sequence-classification:options"]
    assert "num_labels" in options["properties"] and options["additionalProperties"] is False


def test_cli_prints_the_schema(cli) -> None:
    out = cli("spec", "--schema")
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["title"] == "bertzoo ModelSpec" and printed["$schema"].endswith("2020-12/schema")
    assert validate(printed, resolve_spec("bert-tiny").to_dict()) == []


def test_cli_checks_a_spec_file(cli, tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("num_hidden_layers: 1\ncomponents: {attention: sdpa}\n")
    out = cli("spec", str(good))
    assert out.returncode == 0 and "num_hidden_layers: 1" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("components: {head: {name: sequence-classification, options: {num_labels: 0}}}\n")
    out = cli("spec", str(bad))
    assert out.returncode == 2 and "components.head.options.num_labels" in out.stderr
    assert cli("spec").returncode == 2

"""``bertzoo spec``: the spec's JSON Schema (for editors and validators), and checking spec files.

``bertzoo spec --schema`` prints the JSON Schema of :class:`~bertzoo.spec.ModelSpec` in which
each component kind is a ``oneOf`` over the components registered for it (by full name, and by
short name when that is unique), each with the schema of its own options model; the options
models live in ``$defs`` under ``<kind>:<plugin>:<name>:options``. So an editor completes
``components.attention.options.window`` for ``example:sliding-window`` and flags a misspelt
option, as :func:`bertzoo.spec.validate_components` would.

``bertzoo spec FILE`` validates a spec file (fields, component names and options) without
building a model, and prints the resolved spec.
"""

from __future__ import annotations

import argparse
import copy
import json
from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
NO_OPTIONS: dict[str, Any] = {"type": "object", "maxProperties": 0, "description": "takes no options"}


def _def_key(kind: str, full_name: str) -> str:
    return f"{kind}:{full_name}:options"


def _variant(kind: str, names: list[str], options_ref: dict[str, Any], description: str) -> list[dict[str, Any]]:
    """The two spellings of one component: ``{"name": ..., "options": {...}}`` and the bare name."""
    return [
        {
            "type": "object",
            "description": description,
            "properties": {"name": {"enum": names}, "options": options_ref},
            "required": ["name"],
            "additionalProperties": False,
        },
        {"type": "string", "enum": names, "description": description},
    ]


def model_spec_schema(registry: Any = None) -> dict[str, Any]:
    """The JSON Schema of ``ModelSpec`` with every registered component and its options.

    Args:
        registry: the registry to describe (default: the installed plugins).
    """
    from pydantic import BaseModel

    from bertzoo.spec import COMPONENT_KINDS, NONE, ModelSpec

    if registry is None:
        from bertzoo.discovery import get_registry

        registry = get_registry()
    schema = ModelSpec.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    components = defs["Components"]
    for kind in COMPONENT_KINDS:
        records = registry.records(kind)
        short_counts: dict[str, int] = {}
        for record in records:
            short_counts[record.name] = short_counts.get(record.name, 0) + 1
        variants: list[dict[str, Any]] = []
        if kind == "attention":
            variants += _variant(kind, ["auto"], NO_OPTIONS,
                                 "the best registered implementation able to serve the model (see --explain)")
        for record in records:
            names = [record.full_name] + ([record.name] if short_counts[record.name] == 1 else [])
            options_ref: dict[str, Any] = NO_OPTIONS
            model = record.options_model()
            if isinstance(model, type) and issubclass(model, BaseModel):
                key = _def_key(kind, record.full_name)
                ref_template = "#/$defs/" + key.replace("~", "~0").replace("/", "~1") + ":{model}"
                sub = model.model_json_schema(ref_template=ref_template)
                for name, nested in sub.pop("$defs", {}).items():
                    defs[f"{key}:{name}"] = nested
                # validate_components refuses unknown options even for lenient models
                sub["additionalProperties"] = False
                defs[key] = sub
                options_ref = {"$ref": "#/$defs/" + key.replace("~", "~0").replace("/", "~1")}
            variants += _variant(kind, names, options_ref, record.description)
        prop = copy.deepcopy(components["properties"][kind])
        default = prop.get("default")
        new: dict[str, Any] = {"oneOf": variants, "description": f"the {kind} component: a registered name, "
                                                                  f"or {{name, options}}"}
        if kind in ("pooler", "head"):
            new["oneOf"] = variants + [{"type": "null"}, {"const": NONE, "description": "absent"}]
        if default is not None or kind in ("pooler", "head"):
            new["default"] = default
        components["properties"][kind] = new
    schema["$schema"] = SCHEMA_DIALECT
    schema["title"] = "bertzoo ModelSpec"
    return schema


def run(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(model_spec_schema(), indent=args.indent))
        return 0
    if args.file is None:
        from bertzoo.errors import SpecError

        raise SpecError("bertzoo spec needs a spec file to check, or --schema; e.g. `bertzoo spec model.yaml`")
    from bertzoo.factory import resolve_spec

    spec = resolve_spec(args.file)
    print(spec.to_yaml(), end="")
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("spec", help="print the spec's JSON Schema, or check a spec file")
    p.add_argument("file", nargs="?", help="a spec file (.yaml, .json, .toml) or preset to validate and print")
    p.add_argument("--schema", action="store_true",
                   help="print the JSON Schema of ModelSpec, with the options of every registered component")
    p.add_argument("--indent", type=int, default=2, help="JSON indentation of --schema (default 2)")
    p.set_defaults(func=run)

"""Generate docs/spec-reference.md, and the family table in docs/families.md, from the pydantic
models and the registry metadata, and docs/api.md from the Python API's signatures and docstrings.

    python docs/gen_reference.py          # rewrite the generated pages
    python docs/gen_reference.py --check  # exit 1 if one is stale (tests/test_docs.py runs this)

Only bertzoo's built-in plugins are described (third-party plugins installed here are left out,
so the page is the same on every machine); ``bertzoo spec --schema`` and ``bertzoo list`` show
what is installed.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bertzoo.discovery import PluginHost
from bertzoo.registry import Registry
from bertzoo.spec import COMPONENT_KINDS, Components, ModelSpec

OUT = Path(__file__).resolve().parent / "spec-reference.md"
FAMILIES_PAGE = Path(__file__).resolve().parent / "families.md"
API_PAGE = Path(__file__).resolve().parent / "api.md"

# What each architecture field means (HF BertConfig's names and meanings).
FIELD_HELP = {
    "name": "preset or checkpoint this spec came from (informational)",
    "model_type": "the model family (config.json's model_type; `bertzoo list family`); sets the default components",
    "vocab_size": "rows of the word-embedding table",
    "hidden_size": "width H of every hidden state",
    "num_hidden_layers": "number of transformer layers L",
    "num_attention_heads": "attention heads h; must divide hidden_size",
    "intermediate_size": "width of the feed-forward layer",
    "hidden_act": "feed-forward activation (HF's ACT2FN names)",
    "hidden_dropout_prob": "dropout on embeddings and layer outputs",
    "attention_probs_dropout_prob": "dropout on attention probabilities",
    "max_position_embeddings": "longest sequence (absolute position table)",
    "type_vocab_size": "token type (segment) ids",
    "initializer_range": "std of the normal initialisation",
    "layer_norm_eps": "LayerNorm epsilon",
    "pad_token_id": "padding id (its embedding row starts at zero); `none` for no padding id",
    "is_decoder": "causal self-attention (a left-to-right decoder)",
    "add_cross_attention": "layers attend to encoder states (needs is_decoder)",
    "use_cache": "decoders return a KV cache by default",
    "tie_word_embeddings": "the MLM decoder shares the word-embedding matrix",
    "classifier_dropout": "dropout before classifier heads; null = hidden_dropout_prob",
    "embedding_size": "width E of the embeddings when narrower than hidden_size (ELECTRA, ALBERT); null = hidden_size",
    "num_hidden_groups": "layer sharing (ALBERT): groups of layers that num_hidden_layers calls reuse; null = no sharing",
    "inner_group_num": "distinct layers per group, run in turn at every call of the group",
    "components": "the component of each kind (below)",
}
CAPABILITIES = ("causal", "cross_attention", "kv_cache", "returns_weights", "head_mask", "dropout", "varlen", "padded")


def builtin_registry() -> Registry:
    """A registry with bertzoo's built-in plugins only (an empty allow-list loads no third-party one)."""
    host = PluginHost()
    host.load_entry_points(environ={"BERTZOO_PLUGINS": ""})
    return host.registry


def _type(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = text.replace("typing.", "").replace("NoneType", "None")
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        text = " \\| ".join(repr(a) for a in typing.get_args(annotation))
    return text.replace("|", "\\|") if origin is not typing.Literal else text


def _constraints(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "*required*"
    if info.default_factory is not None:
        return "(see below)"
    return f"`{info.default!r}`".replace("None", "null")


def fields_table(model: type[BaseModel], help_text: dict[str, str] | None = None) -> list[str]:
    rows = ["| field | type | default | constraint | meaning |", "|---|---|---|---|---|"]
    for name, info in model.model_fields.items():
        meaning = info.description or (help_text or {}).get(name, "")
        rows.append(f"| `{name}` | {_type(info.annotation)} | {_default(info)} | {_constraints(info)} | {meaning} |")
    return rows


def attention_table(registry: Registry) -> list[str]:
    head = ["name", "priority", "devices", "dtypes", *[c.replace("_", " ") for c in CAPABILITIES], "description"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for record in registry.records("attention"):
        caps = record.capabilities
        marks = ["yes" if caps.get(c, c == "padded") else "—" for c in CAPABILITIES]
        rows.append(
            f"| `{record.full_name}` | {record.metadata.get('priority', 0)} | {', '.join(caps.get('devices', ()))} | "
            f"{', '.join(caps.get('dtypes', ()))} | " + " | ".join(marks) + f" | {record.description} |"
        )
    return rows


def components_section(registry: Registry) -> list[str]:
    lines: list[str] = []
    defaults = Components()
    for kind in COMPONENT_KINDS:
        default = getattr(defaults, kind)
        lines += ["", f"### {kind}", "",
                  f"Default: `{default.name if default is not None else 'none'}`." +
                  (" `auto` picks the attention (see the backend table above)." if kind == "attention" else ""),
                  "", "| name | description | options |", "|---|---|---|"]
        for record in registry.records(kind):
            model = record.options_model()
            options = ", ".join(f"`{n}`" for n in model.model_fields) if model is not None else "—"
            lines.append(f"| `{record.full_name}` | {record.description} | {options} |")
        for record in registry.records(kind):
            model = record.options_model()
            if model is None:
                continue
            lines += ["", f"#### `{record.full_name}` options", ""]
            doc = (model.__doc__ or "").strip().splitlines()
            if doc:
                lines += [" ".join(line.strip() for line in doc if line.strip()), ""]
            lines += fields_table(model)
    return lines


def render(registry: Registry | None = None) -> str:
    registry = registry if registry is not None else builtin_registry()
    lines = [
        "# Spec reference",
        "",
        "<!-- generated by docs/gen_reference.py from the pydantic models and the registry; do not edit. -->",
        "<!-- regenerate: python docs/gen_reference.py -->",
        "",
        "A model is described by a `ModelSpec`: the architecture fields below (HF `BertConfig`'s names,",
        "so a `config.json` maps onto it) and `components`, one entry per component kind. A spec file",
        "is YAML, TOML or JSON with the same keys; a component is written as its name, or as",
        "`{name: ..., options: {...}}`. Unknown keys are errors, and every component's options are",
        "validated against its own options model, so mistakes are reported with their path",
        "(`components.attention.options.window`). Only bertzoo's built-in components are listed here;",
        "`bertzoo list` and `bertzoo spec --schema` include the plugins installed on your machine.",
        "",
        "## ModelSpec fields",
        "",
        *fields_table(ModelSpec, FIELD_HELP),
        "",
        "## Attention backends",
        "",
        "Generated from each implementation's declared capabilities. `attention=\"auto\"` takes the",
        "highest priority able to serve the model and the call; naming one that lacks a needed",
        "capability raises `IncompatibleComponentError`.",
        "",
        *attention_table(registry),
        "",
        "## Components",
        *components_section(registry),
        "",
        "## Presets",
        "",
        "| name | description |",
        "|---|---|",
        *[f"| `{r.full_name}` | {r.description} |" for r in registry.records("preset")],
        "",
    ]
    return "\n".join(lines)


def families_page(registry: Registry | None = None) -> str:
    """docs/families.md with its generated table (between the markers) brought up to date."""
    from bertzoo.family import TABLE_BEGIN, TABLE_END, family_table

    text = FAMILIES_PAGE.read_text(encoding="utf-8")
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END)
    table = family_table(registry or builtin_registry())
    return text[:start] + TABLE_BEGIN + "\n" + table + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated page is stale")
    args = parser.parse_args(argv)
    registry = builtin_registry()
    import api_reference  # docs/api_reference.py, next to this script

    pages = {OUT: render(registry), FAMILIES_PAGE: families_page(registry), API_PAGE: api_reference.render()}
    if args.check:
        stale = [str(path) for path, text in pages.items()
                 if (path.read_text(encoding="utf-8") if path.exists() else "") != text]
        if stale:
            print(f"{', '.join(stale)} stale; regenerate with: python docs/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

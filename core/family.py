"""Model families: what a checkpoint's ``model_type`` means to bertzoo.

A family (BERT, RoBERTa, DistilBERT, ...) is a registry record of kind ``"family"`` whose target
is a :class:`Family`: the facts that differ between architectures which otherwise share the
trunk (:class:`bertzoo.model.BertModel`) and the head code. Built-in families register through
the same ``bertzoo_register`` hook as an outside plugin would; nothing in core/ tests a family's
name. A family says:

- which components a spec of that family defaults to (its embedding, layer, pooler);
- how checkpoint keys map onto bertzoo's: head models keep the trunk at ``.bert`` whatever the
  family, so the file prefix ``roberta.`` (HF's ``base_model_prefix``) becomes ``bert.``, and
  ``key_renames`` rewrites trunk keys whose file names differ from the internal BERT-shaped ones
  (DistilBERT's ``transformer.`` is the trunk's ``encoder.``);
- how ``config.json`` maps to spec fields, when its names differ from BertConfig's;
- whether the model takes token type ids.

Heads keep family-independent names: a family's variant of ``sequence-classification`` is the
head registered as ``<model_type>.sequence-classification`` (:func:`head_for_family`).

This module is light (no torch): registrations import it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bertzoo.errors import ComponentNotFoundError, SpecError

DEFAULT_FAMILY = "bert"
# ALBERT-style layer sharing: file keys name (group, inner layer); the trunk holds them flat.
_GROUPED = re.compile(r"^encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.")
_FLAT = re.compile(r"^encoder\.layer\.(\d+)\.")


@dataclass(frozen=True)
class Family:
    """The facts of one model family (see the module docstring).

    Args:
        model_type: ``config.json``'s ``model_type`` (``"roberta"``).
        description: one line for ``bertzoo list family``.
        base_prefix: HF's ``base_model_prefix``: where head checkpoints keep the trunk (``"roberta"``).
        trunk_architecture: ``architectures[0]`` of a bare trunk (``"RobertaModel"``).
        components: default component names per kind (``embedding``, ``layer``, ``pooler``;
            ``pooler: None`` = the family's trunk has none).
        token_types: whether the model takes ``token_type_ids`` (its tokenizer returns them).
        positions_from_pad: positions count from ``pad_token_id + 1`` (RoBERTa's rule), so the
            longest input is ``max_position_embeddings - pad_token_id - 1`` tokens.
        key_renames: ``(file_prefix, internal_prefix)`` pairs applied to trunk keys (without the
            base prefix), e.g. ``("transformer.", "encoder.")``.
        grouped_layers: file keys name layers as ``encoder.albert_layer_groups.G.albert_layers.K``
            (layer sharing, ALBERT); the trunk's ``encoder.layer.J`` is ``J = G * inner_group_num + K``.
        spec_from_hf: ``"module:function"`` (or a callable) mapping a ``config.json`` dict to spec
            fields, when its names are not BertConfig's; None = BertConfig's names.
        hf_from_spec: the reverse: ``(spec fields as a dict) -> config.json entries``; None = identity.
        sources: where the family's standard configs come from (shown by ``bertzoo list family``).
    """

    model_type: str
    description: str
    base_prefix: str
    trunk_architecture: str
    components: Mapping[str, str | None] = field(default_factory=dict)
    token_types: bool = True
    positions_from_pad: bool = False
    key_renames: tuple[tuple[str, str], ...] = ()
    grouped_layers: bool = False
    spec_from_hf: str | Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    hf_from_spec: str | Callable[[dict[str, Any]], dict[str, Any]] | None = None

    # -- config.json ------------------------------------------------------------------------------
    def spec_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Spec fields from a ``config.json`` dict (BertConfig's names unless the family maps its own).

        A family whose config holds component options (ModernBERT's window, rotary bases) returns
        them under ``"components"``: ``{kind: {"name": ..., "options": {...}}}``; choices a bertzoo
        save recorded win over them.
        """
        if self.spec_from_hf is None:
            return dict(config)
        return dict(_load(self.spec_from_hf)(config))

    def hf_config(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``config.json`` entries for spec fields (the reverse of :meth:`spec_fields`).

        ``fields`` may carry the spec's ``"components"`` (JSON form) for a family that writes
        component options back into config.json; they never reach the file as such.
        """
        if self.hf_from_spec is None:
            return {k: v for k, v in fields.items() if k != "components"}
        out = dict(_load(self.hf_from_spec)(dict(fields)))
        out.pop("components", None)
        return out

    # -- checkpoint keys ----------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self.base_prefix + "."

    def file_trunk_roots(self) -> set[str]:
        """First components of trunk keys as files write them (unprefixed trunk checkpoints)."""
        roots = {"embeddings", "encoder", "pooler"}
        roots.update(old.split(".", 1)[0] for old, _new in self.key_renames)
        return roots

    def trunk_key_from_file(self, key: str, inner_group_num: int = 1) -> str:
        """A trunk key as a file writes it (no base prefix) → the trunk's own name."""
        if self.grouped_layers:
            match = _GROUPED.match(key)
            if match:
                flat = int(match.group(1)) * inner_group_num + int(match.group(2))
                key = f"encoder.layer.{flat}." + key[match.end():]
        for old, new in self.key_renames:
            if key.startswith(old):
                return new + key[len(old):]
        return key

    def trunk_key_to_file(self, key: str, inner_group_num: int = 1) -> str:
        """The trunk's own key name → the name a file of this family writes."""
        for old, new in self.key_renames:
            if key.startswith(new):
                key = old + key[len(new):]
                break
        if self.grouped_layers:
            match = _FLAT.match(key)
            if match:
                group, inner = divmod(int(match.group(1)), inner_group_num)
                key = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}." + key[match.end():]
        return key


# BERT's layout is the trunk's own (keys, config names), so a registry without family records
# (a test's, a minimal host's) still reads and writes BERT; the eager plugin registers this object.
BERT_FAMILY = Family(
    model_type=DEFAULT_FAMILY,
    description="BERT (transformers' BertModel and its Bert* heads)",
    base_prefix="bert",
    trunk_architecture="BertModel",
    components={"embedding": "bert", "layer": "bert", "pooler": "cls-tanh"},
)


def _load(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return found


# -- registry look-ups ------------------------------------------------------------------------------
def get_family(model_type: str, registry: Any) -> Family:
    """The registered family for ``model_type``.

    Raises:
        SpecError: no plugin registers that family (with the ones that are registered).
    """
    try:
        record = registry.get("family", model_type)
    except ComponentNotFoundError:
        if model_type == DEFAULT_FAMILY:
            return BERT_FAMILY
        known = ", ".join(r.name for r in registry.records("family")) or "none"
        raise SpecError(
            f"model_type {model_type!r} is not a registered family (registered: {known}); install the plugin "
            "that provides it, or fix model_type"
        ) from None
    family = record.load()
    if not isinstance(family, Family):
        raise SpecError(
            f"family {record.full_name} (plugin {record.plugin!r}) is a {type(family).__name__}, not a "
            "bertzoo.family.Family; its plugin must register a Family"
        )
    return family


def families(registry: Any) -> list[Family]:
    """Every registered family (records whose target is not a Family are skipped)."""
    found = []
    if not registry.is_component("family", DEFAULT_FAMILY):
        found.append(BERT_FAMILY)
    for record in registry.records("family"):
        try:
            target = record.load()
        except Exception:  # a broken plugin's family is reported by `bertzoo plugins`, not here
            continue
        if isinstance(target, Family):
            found.append(target)
    return found


def head_for_family(head: str, model_type: str, registry: Any) -> str:
    """The registered head to build for family-independent head name ``head`` in ``model_type``.

    A family's own variant (``roberta.sequence-classification``) wins; otherwise the head itself,
    if it is generic (no ``family`` metadata: a plugin's or the sentence-embedding head) or of that
    family. A head of another family is refused: its math would be the wrong family's.

    Raises:
        SpecError: the family has no such head (with the heads it has).
    """
    short = head.split(":")[-1]
    if "." not in short and registry.is_component("head", f"{model_type}.{short}"):
        return str(registry.get("head", f"{model_type}.{short}").full_name)
    try:
        record = registry.get("head", head)
    except ComponentNotFoundError as exc:
        raise SpecError(f"components.head.name: {exc}") from None
    owner = record.metadata.get("family")
    if owner in (None, "*", model_type):
        return head
    own = sorted(
        r.name.split(".", 1)[1] for r in registry.records("head")
        if r.metadata.get("family") == model_type and "." in r.name
    )
    generic = sorted(r.name for r in registry.records("head") if r.metadata.get("family") in (None, "*"))
    raise SpecError(
        f"head {head!r} is {owner}'s ({record.full_name}); the {model_type} family has no {head!r} head. "
        f"Its heads: {', '.join(own) or 'none'}; heads for any family: {', '.join(generic) or 'none'}"
    )





# -- the docs' family table ---------------------------------------------------------------------------
TABLE_BEGIN = "<!-- family-table: generated by `python -m bertzoo.family`; do not edit by hand -->"
TABLE_END = "<!-- /family-table -->"


def family_table(registry: Any) -> str:
    """A Markdown table of the families bertzoo ships: what loads, the heads, the attention backends,
    the presets. docs/families.md holds it between :data:`TABLE_BEGIN` and :data:`TABLE_END`."""
    def builtin(kind: str) -> list[Any]:  # bertzoo's own: the docs describe what ships
        return [r for r in registry.records(kind) if getattr(r, "distribution", None) in ("bertzoo", None)]

    heads = builtin("head")
    presets = builtin("preset")
    attentions = [r.name for r in builtin("attention")]
    rows = ["| family | `model_type` | transformers classes read and written | heads | attention | presets |",
            "|---|---|---|---|---|---|"]
    shipped = {r.name for r in builtin("family")} | {DEFAULT_FAMILY}
    for family in sorted((f for f in families(registry) if f.model_type in shipped), key=lambda f: (f.model_type != DEFAULT_FAMILY, f.model_type)):
        own = [r for r in heads if r.metadata.get("family") == family.model_type]
        generic = [r for r in heads if r.metadata.get("family") in (None, "*")]
        names = sorted({r.name.split(".", 1)[-1] for r in own} | {r.name for r in generic})
        classes = [family.trunk_architecture] + sorted(
            str(r.metadata["hf_architecture"]) for r in own if r.metadata.get("hf_architecture"))
        layer = family.components.get("layer") or "bert"
        packed = registry.is_component("layer", layer) and bool(registry.get("layer", layer).metadata.get("supports_packed"))
        backends = ", ".join(attentions) + (" (packed)" if packed else "")
        sizes = sorted(r.name for r in presets if preset_family(r) == family.model_type)
        rows.append(f"| {family.description.split(' (')[0]} | `{family.model_type}` | {', '.join(classes)} | "
                    f"{', '.join(names)} | {backends} | {', '.join(sizes) or '—'} |")
    return "\n".join(rows) + "\n"


def preset_family(record: Any) -> str:
    """A preset's family: its registration's ``family``, else the ``model_type`` its data names."""
    family = record.metadata.get("family")
    if family:
        return str(family)
    target = record.target
    return str(target.get("model_type", DEFAULT_FAMILY)) if isinstance(target, dict) else ""


__all__ = ["BERT_FAMILY", "DEFAULT_FAMILY", "TABLE_BEGIN", "TABLE_END", "Family", "families", "family_table",
           "get_family", "head_for_family", "preset_family"]


if __name__ == "__main__":  # python -m bertzoo.family: print the table for docs/families.md
    # run as __main__, this file's classes are copies: use the package's own module
    from bertzoo import family as _family
    from bertzoo.discovery import get_registry

    print(_family.TABLE_BEGIN)
    print(_family.family_table(get_registry()), end="")
    print(_family.TABLE_END)

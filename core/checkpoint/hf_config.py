"""``config.json`` at the checkpoint level: which head a folder holds, its options, its dtype, and
the ``config.json`` a save writes.

The architecture fields map through :meth:`ModelSpec.from_hf_config` / :meth:`ModelSpec.to_hf_config`;
this module adds what depends on the registry and on the weights: the head (``architectures`` ↔
a head's ``hf_architecture`` metadata), its options (the head's optional classmethods
``options_from_hf_config``, ``hf_config_from_options`` and ``options_from_sentence_transformers``),
and bertzoo's own section (``config["bertzoo"]``: version, spec name, component choices).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bertzoo.checkpoint.keys import is_head_model
from bertzoo.checkpoint.layout import (
    CONFIG_NAME,
    SENTENCE_TRANSFORMERS_ARCHITECTURE,
    TRUNK_ARCHITECTURE,
    read_json,
)
from bertzoo.discovery import registry_or_default
from bertzoo.dtypes import DTYPE_NAMES, torch_dtype
from bertzoo.errors import CheckpointError, ComponentNotFoundError, InputError
from bertzoo.family import DEFAULT_FAMILY, Family, families, get_family
from bertzoo.spec import ModelSpec

if TYPE_CHECKING:
    from bertzoo.checkpoint.sentence_transformers import SentenceTransformerInfo
    from bertzoo.registry import ComponentRecord, Registry

logger = logging.getLogger(__name__)


# -- model families -------------------------------------------------------------------------------
# config.json ``model_type`` values bertzoo reads are the registered families (kind "family",
# bertzoo.family.Family); a checkpoint of any other type is refused rather than read as another
# family with the wrong math.
def supported_model_types(registry: Registry | None = None) -> list[str]:
    """The ``model_type`` values bertzoo loads: one per registered family."""
    return [f.model_type for f in families(registry_or_default(registry))]


def family_of(config: Mapping[str, Any], registry: Registry) -> Family:
    """The family of a ``config.json`` dict (no ``model_type``: BERT, as transformers' BertConfig)."""
    return get_family(str(config.get("model_type") or DEFAULT_FAMILY), registry)


def spec_from_config(config: Mapping[str, Any], registry: Registry, **fields: Any) -> ModelSpec:
    """The spec a ``config.json`` implies, through its family's name mapping; ``fields`` win.

    Raises:
        SpecError: a config the family's modules cannot express.
    """
    family = family_of(config, registry)
    data = family.spec_fields(config)
    data["model_type"] = family.model_type
    # config.json values that are component options (ModernBERT's window, rope thetas) come back as
    # components; what a bertzoo save recorded and the head choice win over them
    from_config = data.pop("components", None) or {}
    components = {**from_config, **(fields.pop("components", None) or {})}
    return ModelSpec.from_hf_config(data, **fields, **({"components": components} if components else {}))


# -- reading ----------------------------------------------------------------------------------------
def read_hf_config(model_dir: Path, registry: Registry | None = None) -> dict[str, Any]:
    """``model_dir/config.json`` as a dict, for a ``model_type`` a registered family reads
    (:func:`supported_model_types`; a config without ``model_type`` is read as BERT).

    Raises:
        CheckpointError: no config.json, unreadable, not a JSON object, or a ``model_type`` no
            registered family reads (with the supported ones).
    """
    if not (model_dir / CONFIG_NAME).is_file():
        raise CheckpointError(
            f"{str(model_dir)!r} has no {CONFIG_NAME}; a checkpoint folder needs config.json next to its weights "
            "(save one with save_pretrained, or point at the folder that has it)"
        )
    config = read_json(model_dir / CONFIG_NAME)
    if not isinstance(config, dict):
        raise CheckpointError(f"{str(model_dir / CONFIG_NAME)!r} must hold a JSON object; re-save the checkpoint")
    model_type = config.get("model_type") or DEFAULT_FAMILY
    supported = supported_model_types(registry)
    if model_type not in supported:
        raise CheckpointError(
            f"{str(model_dir / CONFIG_NAME)!r} has model_type={model_type!r}, which bertzoo does not read "
            f"(supported families: {', '.join(supported)}); reading it as BERT would give wrong results: "
            "load it with transformers, or install a bertzoo plugin that registers that family"
        )
    return config


def bertzoo_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a bertzoo save recorded in ``config["bertzoo"]`` (empty for other tools' folders)."""
    section = config.get("bertzoo")
    return section if isinstance(section, Mapping) else {}


def head_record_for_architecture(architecture: str, registry: Registry) -> ComponentRecord | None:
    """The registered head whose metadata ``hf_architecture`` equals ``architecture``."""
    found = [r for r in registry.records("head") if r.metadata.get("hf_architecture") == architecture]
    if len(found) > 1:
        logger.info("several heads claim %s (%s); using %s", architecture,
                    ", ".join(r.full_name for r in found), found[0].full_name)
    return found[0] if found else None


def choose_head(head: str | None, config: Mapping[str, Any], saved: Mapping[str, Any],
                st_info: SentenceTransformerInfo | None, registry: Registry) -> str | None:
    """The head name to build: ``head`` itself unless it is ``"auto"``, then what the save recorded,
    the sentence-transformers head for an ST folder, or the head declaring ``architectures[0]``."""
    if head != "auto":
        return head
    saved_head = (saved.get("components") or {}).get("head")
    if isinstance(saved_head, Mapping) and saved_head.get("name"):
        return str(saved_head["name"])
    if st_info is not None:
        record = head_record_for_architecture(SENTENCE_TRANSFORMERS_ARCHITECTURE, registry)
        return record.full_name if record is not None else None
    architectures = config.get("architectures") or [TRUNK_ARCHITECTURE]
    architecture = str(architectures[0])
    if architecture in {TRUNK_ARCHITECTURE, *(f.trunk_architecture for f in families(registry))}:
        return None
    record = head_record_for_architecture(architecture, registry)
    if record is None:
        logger.warning("no registered head declares hf_architecture=%r; head='auto' loads the trunk only",
                       architecture)
        return None
    return record.full_name


def head_options_from_config(head_cls: Any, head_name: str, config: Mapping[str, Any], saved: Mapping[str, Any],
                             st_info: SentenceTransformerInfo | None, registry: Registry) -> dict[str, Any]:
    """The head options a folder implies: the head's config.json hooks, else what a bertzoo save recorded."""
    options: dict[str, Any] = {}
    # A head without config.json hooks (a plugin head) gets back the options a bertzoo save
    # recorded for it. With hooks, config.json is the truth: another tool may have edited it.
    saved_head = (saved.get("components") or {}).get("head")
    saved_name = str(saved_head.get("name") or "") if isinstance(saved_head, Mapping) else ""
    if (
        not hasattr(head_cls, "options_from_hf_config")
        and saved_name
        and isinstance(saved_head, Mapping)
        and isinstance(saved_head.get("options"), Mapping)
        and registry.is_component("head", saved_name)
        and registry.get("head", saved_name).full_name == registry.get("head", head_name).full_name
    ):
        options.update(saved_head["options"])
    if hasattr(head_cls, "options_from_hf_config"):
        options.update(head_cls.options_from_hf_config(dict(config)))
    if st_info is not None and hasattr(head_cls, "options_from_sentence_transformers"):
        options.update(head_cls.options_from_sentence_transformers(st_info))
    return options


def classifier_keys(head_cls: Any) -> tuple[str, ...]:
    """The head's keys re-initialised when its options (``num_labels``) change their shape."""
    return tuple(getattr(head_cls, "classifier_keys", ()) or ())


def saved_components(saved: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """Component choices a bertzoo save recorded, minus the head (chosen by ``head=``).

    An attention implementation that is not installed here falls back to ``auto``: it changes
    speed, not the math or the keys.
    """
    comps = dict(saved.get("components") or {})
    comps.pop("head", None)
    attention = comps.get("attention")
    if isinstance(attention, Mapping) and attention.get("name") not in (None, "auto"):
        try:
            registry.get("attention", str(attention["name"]))
        except ComponentNotFoundError:
            logger.warning("checkpoint was saved with attention %r, which is not installed; using auto",
                           attention["name"])
            comps["attention"] = {"name": "auto"}
    return comps


def checkpoint_dtype(dtype: Any, config: Mapping[str, Any], state: Mapping[str, torch.Tensor]
                     ) -> torch.dtype | None:
    """``dtype=`` of ``from_pretrained`` as a torch dtype: None keeps the model's default; ``"auto"``
    is config.json's ``dtype`` (or ``torch_dtype``), else the first floating tensor's.

    Raises:
        CheckpointError: a name that is not a dtype (bertzoo.dtypes lists them).
    """
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype).strip().lower() == "auto":
        saved = config.get("dtype") or config.get("torch_dtype")
        if isinstance(saved, str) and saved.replace("torch.", "").strip().lower() in DTYPE_NAMES:
            return torch_dtype(saved)
        return next((v.dtype for v in state.values() if v.is_floating_point()), None)
    try:
        return torch_dtype(dtype)
    except InputError as exc:
        raise CheckpointError(f"{exc}; or 'auto' for the checkpoint's own dtype") from None


# -- writing ----------------------------------------------------------------------------------------
def spec_of(model: nn.Module) -> ModelSpec:
    """The spec a bertzoo model was built from (the head's, else the trunk's).

    Raises:
        CheckpointError: a model bertzoo did not build.
    """
    for owner in (model, getattr(model, "bert", None)):
        spec = getattr(owner, "spec", None)
        if isinstance(spec, ModelSpec):
            return spec
    raise CheckpointError(
        f"{type(model).__name__} carries no ModelSpec (.spec); save_pretrained saves models built by "
        "bertzoo.build or bertzoo.from_pretrained"
    )


def head_record_of(model: nn.Module, spec: ModelSpec, registry: Registry) -> ComponentRecord | None:
    """The registered head ``model`` is an instance of (None for a bare trunk)."""
    if not is_head_model(model):
        return None
    candidates = []
    if spec.components.head is not None:
        candidates.append(registry.get("head", spec.components.head.name))
    candidates += registry.records("head")
    for record in candidates:
        try:
            if record.load() is type(model):
                return record
        except Exception:  # a broken third-party head must not stop the save
            continue
    return None


def _dtype_name(model: nn.Module) -> str:
    param = next(model.parameters(), None)
    return str(param.dtype).replace("torch.", "") if param is not None else "float32"


def _full_names(components: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """Component choices with registered names written in full (``bertzoo:sdpa``, not ``sdpa``): a short
    name becomes ambiguous once a second plugin registers it. ``auto`` stays ``auto``."""
    for kind, choice in components.items():
        if kind == "head" or not isinstance(choice, dict) or choice.get("name") in (None, "auto"):
            continue
        try:
            choice["name"] = registry.get(kind, str(choice["name"])).full_name
        except ComponentNotFoundError:  # built with another registry: keep the name it was built with
            logger.info("%s %r is not in the registry used to save; recorded as given", kind, choice["name"])
    return components


def hf_config_for(model: nn.Module, registry: Registry | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``model``: HF keys, architecture, head keys, and bertzoo's component choices."""
    from bertzoo import __version__

    reg = registry_or_default(registry)
    spec = spec_of(model)
    record = head_record_of(model, spec, reg)
    family = get_family(spec.model_type, reg)
    config = spec.to_hf_config()
    architecture = family.trunk_architecture
    components = _full_names(spec.components.model_dump(mode="json"), reg)
    if record is None:
        components["head"] = None
    else:
        architecture = str(record.metadata.get("hf_architecture") or type(model).__name__)
        if architecture == SENTENCE_TRANSFORMERS_ARCHITECTURE:  # not a transformers class: the folder is a trunk's
            architecture = family.trunk_architecture
        head_cls = record.load()
        head_options = dict(spec.components.head.options) if spec.components.head is not None else {}
        if hasattr(head_cls, "hf_config_from_options"):
            config.update(head_cls.hf_config_from_options(head_options))
        components["head"] = {"name": record.full_name, "options": head_options}
    config = family.hf_config({**config, "components": components})
    config.update(architectures=[architecture], model_type=family.model_type, dtype=_dtype_name(model))
    # transformers ignores unknown keys; this keeps attention/pooler choices across a bertzoo round trip
    config["bertzoo"] = {"version": __version__, "name": spec.name, "components": components}
    return dict(sorted(config.items()))


__all__ = [
    "bertzoo_section", "family_of", "spec_from_config", "checkpoint_dtype", "choose_head", "classifier_keys",
    "head_options_from_config", "head_record_for_architecture", "head_record_of", "hf_config_for", "read_hf_config",
    "saved_components", "spec_of", "supported_model_types",
]

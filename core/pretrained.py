"""from_pretrained: a HuggingFace folder (or hub id) → a bertzoo model.

It sits above the factory (it reads a checkpoint, builds the model from the spec the checkpoint
implies, then loads the weights), so the checkpoint formats below it never import the factory or
the model. ``save_pretrained`` is re-exported from :mod:`bertzoo.checkpoint.save`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bertzoo.checkpoint.hf_config import (
    bertzoo_section,
    checkpoint_dtype,
    choose_head,
    classifier_keys,
    family_of,
    head_options_from_config,
    read_hf_config,
    saved_components,
    spec_from_config,
)
from bertzoo.checkpoint.hub import resolve_model_dir
from bertzoo.checkpoint.keys import is_head_model, load_into, normalize_keys, plan_load
from bertzoo.checkpoint.layout import short_list
from bertzoo.checkpoint.meta import assign_state, no_torch_init
from bertzoo.checkpoint.report import LoadReport
from bertzoo.checkpoint.save import save_pretrained
from bertzoo.checkpoint.sentence_transformers import read_sentence_transformers_info
from bertzoo.checkpoint.weights import SAFE_SUFFIX, read_state_dict, scan_non_finite, weight_files
from bertzoo.discovery import registry_or_default
from bertzoo.errors import CheckpointError
from bertzoo.factory import assemble, resolve_spec
from bertzoo.family import get_family, head_for_family
from bertzoo.limits import check_size
from bertzoo.model import init_weights

if TYPE_CHECKING:
    from bertzoo.registry import Registry

logger = logging.getLogger(__name__)


def from_pretrained(
    path_or_hub_id: str | os.PathLike[str],
    *,
    head: str | None = None,
    attention: str | None = None,
    strict: bool = True,
    allow_pickle: bool = False,
    check_finite: bool = True,
    dtype: Any = None,
    device: Any = None,
    revision: str | None = None,
    registry: Registry | None = None,
    max_parameters: int | None = None,
    max_layers: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """Load a HuggingFace BERT checkpoint (folder, sentence-transformers folder or hub id).

    The model carries a :class:`~bertzoo.checkpoint.LoadReport` at ``model.load_report``.

    Args:
        path_or_hub_id: a local folder, or a hub id (cache first; ``HF_HUB_OFFLINE`` honoured).
        head: None = the trunk (``BertModel``); a head name (``"sequence-classification"``); or
            ``"auto"`` = the head that registered ``hf_architecture == config.architectures[0]``.
        attention: an attention name or ``"auto"``; None = what a bertzoo save recorded, else auto.
        strict: raise on missing, mismatched or foreign trunk keys (head keys new by design are
            only reported); False reports everything in ``model.load_report`` instead.
        allow_pickle: read ``pytorch_model.bin`` files (and shards that are not ``.safetensors``)
            with ``torch.load(weights_only=True)``; needs torch >= 2.6.
        check_finite: refuse weights holding NaN or Inf (one cheap pass over the loaded
            tensors); False skips the check and loads them as they are.
        dtype: None (float32), ``"auto"`` (the checkpoint's dtype), ``"fp32"``/``"bf16"``/a torch dtype.
        device: where to put the model.
        revision: branch, tag or commit for hub ids.
        max_parameters, max_layers: size limits checked against config.json's sizes before the
            weights are read or anything is allocated (default: ``BERTZOO_MAX_PARAMETERS`` /
            ``BERTZOO_MAX_LAYERS``, else 10 B parameters and 1000 layers; see :mod:`bertzoo.limits`).
        **overrides: spec fields, components or component options, as in :func:`bertzoo.build`
            (``num_labels=3`` re-initialises the head's ``classifier_keys`` if their shape changes).

    Raises:
        CheckpointError: unreadable or incomplete folder; a path the checkpoint names outside its
            folder; pickle without opt-in (or on torch < 2.6); a ``model_type`` no registered family
            reads; keys that do not fit (shape, or integer tensors for float weights); NaN or Inf weights.
        SpecError: a config.json or overrides bertzoo cannot express, or sizes over the limits.
    """
    reg = registry_or_default(registry)
    folder = resolve_model_dir(path_or_hub_id, revision, allow_pickle=allow_pickle)
    st_info = read_sentence_transformers_info(folder)
    model_dir = st_info.transformer_path if st_info is not None else folder
    config = read_hf_config(model_dir, reg)
    saved = bertzoo_section(config)
    files = weight_files(model_dir, allow_pickle=allow_pickle)

    head_name = choose_head(head, config, saved, st_info, reg)
    if head_name is not None:  # the family's own variant of a family-independent head name
        head_name = head_for_family(head_name, family_of(config, reg).model_type, reg)
    head_cls = reg.get("head", head_name).load() if head_name is not None else None
    config_options: dict[str, Any] = {}
    if head_cls is not None and head_name is not None:
        config_options = head_options_from_config(head_cls, head_name, config, saved, st_info, reg)
    components = saved_components(saved, reg)
    if head_name is not None:
        components["head"] = {"name": head_name, "options": config_options}
    spec = spec_from_config(config, reg, name=str(path_or_hub_id), components=components)
    if attention is not None:
        overrides = {"attention": attention, **overrides}
    spec = resolve_spec(spec, overrides, reg)
    final_options = dict(spec.components.head.options) if spec.components.head is not None else {}
    # an option override re-initialises the head's classifier only when it changes what the checkpoint says
    changed_head = any(final_options.get(k) != v for k, v in config_options.items()) or any(
        k in final_options and k not in config_options for k in overrides)
    reinitialize = classifier_keys(head_cls) if changed_head else ()
    # A config.json's sizes are checked before gigabytes of weights are read or modules are built.
    limits = {"max_parameters": max_parameters, "max_layers": max_layers}
    check_size(spec, **limits, source=f"checkpoint {str(path_or_hub_id)!r} (config.json)")

    state = read_state_dict(files, allow_pickle=allow_pickle)
    torch_dtype = checkpoint_dtype(dtype, config, state)
    # On the CPU the model is built on the meta device and the file's tensors become its weights:
    # no random init of weights about to be replaced and no second copy (cold start, peak memory).
    on_meta = device is None or torch.device(device).type == "cpu"
    if on_meta:
        with torch.device("meta"), no_torch_init():
            model = assemble(spec, reg, dtype=torch_dtype, init=False, **limits)
    else:
        model = assemble(spec, reg, device=device, dtype=torch_dtype, **limits)
    report = LoadReport(source=str(model_dir), files=[p.name for p in files])
    state = normalize_keys(state, model.state_dict().keys(), head_model=is_head_model(model), report=report,
                           family=get_family(spec.model_type, reg), inner_group_num=spec.inner_group_num)
    # safetensors files are scanned by reading them, not through their memory map (resident memory);
    # tensors from pickle files are already in memory and are checked one by one
    check_each = check_finite and any(p.suffix != SAFE_SUFFIX for p in files)
    if check_finite:
        report.non_finite.extend(k for p in files if p.suffix == SAFE_SUFFIX for k in scan_non_finite(p))
    if on_meta:
        to_load = plan_load(model, state, report=report, reinitialize=reinitialize, check_finite=check_each)
        with torch.no_grad():
            assign_state(model, to_load, lambda modules: init_weights(modules, spec))
    else:
        load_into(model, state, report=report, reinitialize=reinitialize, check_finite=check_each)
    _check(report, path_or_hub_id, strict)

    model.load_report = report  # type: ignore[assignment]
    if st_info is not None:
        model.sentence_transformers_info = st_info  # type: ignore[assignment]
    model.name_or_path = str(path_or_hub_id)  # type: ignore[assignment]
    model.eval()
    return model


def _check(report: LoadReport, source: str | os.PathLike[str], strict: bool) -> None:
    """Raise for what ``strict`` refuses; log the report (a warning when anything is off)."""
    if report.non_finite:  # only listed when check_finite is on
        raise CheckpointError(
            f"checkpoint {str(source)!r} holds NaN or Inf values in {short_list(report.non_finite)}: the file is "
            "corrupted (or the training diverged); download or save it again, or pass check_finite=False to load "
            "it as it is"
        )
    problems = report.problems()
    if strict and problems:
        raise CheckpointError(
            f"checkpoint {str(source)!r} does not fit the model ({len(problems)} problem(s)): "
            f"{short_list(problems, 20)}. Fix the overrides or config so the architecture matches, or pass "
            "strict=False to load anyway (the listed weights keep their random initial values)"
        )
    if report.clean and not report.expected_new:
        logger.info(report.summary())
    else:
        logger.warning(report.summary())


__all__ = ["from_pretrained", "save_pretrained"]

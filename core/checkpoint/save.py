"""save_pretrained: write what transformers writes, atomically.

config.json, then model.safetensors (or ``model-0000i-of-0000N.safetensors`` shards plus
``model.safetensors.index.json``), tied aliases omitted, all built in a temporary folder that
:func:`bertzoo._fs.atomic_folder` fsyncs and renames into place.

This module depends on the spec, the registry and ``bertzoo._fs`` only (never on the factory or
the model), so the trunk and the heads can mix in :class:`PretrainedMixin` without an import cycle.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bertzoo._fs import atomic_folder
from bertzoo.checkpoint.hf_config import hf_config_for, spec_of
from bertzoo.checkpoint.keys import alias_groups, file_key
from bertzoo.checkpoint.layout import CONFIG_NAME, SAFE_INDEX, SAFE_WEIGHTS
from bertzoo.checkpoint.model_card import CARD_FILE, is_bertzoo_card, render_model_card, report_dict
from bertzoo.checkpoint.save_sources import (
    SaveContext,
    copy_tokenizer_files,
    embedding_settings,
    has_tokenizer,
    source_folder,
    write_tokenizer,
)
from bertzoo.discovery import registry_or_default
from bertzoo.errors import CheckpointError
from bertzoo.family import get_family

if TYPE_CHECKING:
    from bertzoo.registry import Registry

logger = logging.getLogger(__name__)

# transformers' convert_file_size_to_int units, longest suffix first so "KIB" is not read as "B"
_SIZE_UNITS = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
               "TB": 10**12, "B": 1}


def parse_size(size: int | str) -> int:
    """``"20KB"`` → 20000, ``"5GiB"`` → 5·2³⁰ (transformers' ``convert_file_size_to_int`` units)."""
    if isinstance(size, int):
        return size
    text = size.strip().upper()
    for unit, factor in _SIZE_UNITS.items():
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * factor)
            except ValueError:
                break
    raise CheckpointError(f"max_shard_size {size!r} is not a size; write e.g. 500MB, 5GB or 2GiB, or an int of bytes")


def state_dict_for_save(model: nn.Module, registry: Registry | None = None) -> dict[str, torch.Tensor]:
    """The tensors to write under the file names of the model's family (``roberta.`` for a RoBERTa
    head, ...): one name per shared tensor (tied aliases omitted), contiguous, on CPU."""
    spec = spec_of(model)
    family = get_family(spec.model_type, registry_or_default(registry))
    state = model.state_dict()
    keep = [group[0] for group in alias_groups(model)]
    return {
        file_key(name, family=family, inner_group_num=spec.inner_group_num): state[name].detach().to("cpu").contiguous()
        for name in keep
    }


def _split_shards(state: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def write_weights(folder: Path, state: dict[str, torch.Tensor], max_shard_size: int | str | None = None) -> None:
    """Write ``state`` into ``folder`` as safetensors: one file, or shards plus their index."""
    from safetensors.torch import save_file

    metadata = {"format": "pt"}
    shards = _split_shards(state, parse_size(max_shard_size)) if max_shard_size is not None else [state]
    if len(shards) == 1:
        save_file(shards[0], str(folder / SAFE_WEIGHTS), metadata=metadata)
        return
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata=metadata)
        weight_map.update(dict.fromkeys(shard, name))
    index = {
        "metadata": {
            "total_parameters": sum(t.numel() for t in state.values()),
            "total_size": sum(t.numel() * t.element_size() for t in state.values()),
        },
        "weight_map": dict(sorted(weight_map.items())),
    }
    (folder / SAFE_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _is_weight_file(name: str) -> bool:
    return name == CONFIG_NAME or name.endswith((".safetensors", ".safetensors.index.json")) or name.startswith(
        "pytorch_model")


def _keep_other_files(source: Path, tmp: Path) -> None:
    """Copy what the old folder holds besides weights and config (a tokenizer, a README) into ``tmp``."""
    for entry in source.iterdir():
        if _is_weight_file(entry.name) or (tmp / entry.name).exists():
            continue
        if entry.is_dir():
            shutil.copytree(entry, tmp / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)


def _max_positions(model: nn.Module, registry: Registry | None) -> int:
    """The longest input the model's positions allow (RoBERTa-style families count from the pad id)."""
    spec = spec_of(model)
    family = get_family(spec.model_type, registry_or_default(registry))
    positions, pad = int(spec.max_position_embeddings), spec.pad_token_id
    if getattr(family, "positions_from_pad", False) and isinstance(pad, int) and 0 <= pad < positions:
        return positions - pad - 1
    return positions


def _call_save_hook(hook: Any, folder: Path, context: SaveContext) -> None:
    """A head's ``save_extra_files(folder[, context])`` (one-argument hooks of plugins still work)."""
    try:
        takes_context = len(inspect.signature(hook).parameters) >= 2
    except (TypeError, ValueError):
        takes_context = False
    if takes_context:
        hook(folder, context)
    else:
        hook(folder)


def _save_tokenizer(model: nn.Module, tmp: Path, tokenizer: Any, target: Path) -> tuple[str | None, Path | None]:
    """Write the tokenizer into ``tmp``: the one given, else the source folder's; returns where it came
    from and the folder to read its ``tokenizer_config.json`` from (None, None: no tokenizer written)."""
    if tokenizer is False:
        return None, None
    if tokenizer is not None:
        origin = write_tokenizer(tokenizer, tmp)
        return origin, tmp
    source = source_folder(model)
    if source is not None and has_tokenizer(source):
        copy_tokenizer_files(source, tmp)
        return str(source), tmp
    if target.is_dir() and has_tokenizer(target):
        return str(target), target  # the files already there are kept (re-saving in place)
    return None, None


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    registry: Registry | None = None,
    tokenizer: Any = None,
    max_seq_length: int | None = None,
    do_lower_case: bool | None = None,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    similarity_fn_name: str | None = None,
    model_card: bool = True,
    verify_report: Any = None,
) -> Path:
    """Write ``model`` as a folder transformers (and, for an embedding model, sentence-transformers)
    loads unchanged: no missing or unexpected keys, the same outputs.

    Writes ``config.json`` and ``model.safetensors`` (or ``model-0000i-of-0000N.safetensors`` plus
    ``model.safetensors.index.json`` when ``max_shard_size`` splits it); the tokenizer files (the
    ``tokenizer`` given, else those of the folder the model was loaded from: see
    :mod:`bertzoo.checkpoint.save_sources`); the head's own files (an embedding model writes
    ``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json`` and
    ``config_sentence_transformers.json``, with the source folder's prompts and max length unless
    overridden here); and a model card ``README.md`` (:mod:`bertzoo.checkpoint.model_card`).

    A model with no tokenizer to save (built by ``bertzoo.build``, or loaded from a folder without
    one) is written without it and a :class:`UserWarning` says so; the card says so too. Pass
    ``tokenizer=False`` to leave the tokenizer out on purpose (no warning).

    Atomic: everything is written to a temporary folder next to the target, then renamed into
    place, so a crash leaves an existing folder as it was; a save killed mid-swap is finished or
    rolled back by the next save or load of the folder, which also deletes killed saves'
    temporaries (logged). A symlinked target stays a symlink (the folder it points to is replaced).
    Other files already in the folder (a tokenizer, a README) are kept unless the save writes a
    file of the same name; old weight files are replaced; a README.md bertzoo did not write is kept.

    Args:
        max_shard_size: bytes or a size string (``"20KB"``, ``"5GB"``); None = one file.
        tokenizer: a folder, a transformers tokenizer or a :class:`bertzoo.Tokenizer`; None = the
            source folder's; False = none.
        max_seq_length, do_lower_case, prompts, default_prompt_name, similarity_fn_name: an
            embedding model's sentence-transformers settings; None = the source folder's (max
            length: else the smallest of the positions and the tokenizer's ``model_max_length``).
        model_card: write ``README.md``.
        verify_report: a :class:`bertzoo.verify.VerifyReport` (or its ``as_dict()``, or the path of
            ``bertzoo verify --json``'s output) whose figures the card shows; see also
            :func:`bertzoo.checkpoint.model_card.record_verification`.

    Returns:
        The folder written.

    Raises:
        CheckpointError: the target is a file, ``max_shard_size`` is not a size, the model was not
            built by bertzoo, a ``tokenizer`` that cannot be written, bad prompts, or a verify report
            that is not one.
    """
    target = Path(save_directory).expanduser()
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"cannot save to {str(target)!r}: it is a file; give a folder path")
    config = hf_config_for(model, registry)
    state = state_dict_for_save(model, registry)
    report = report_dict(verify_report) if verify_report is not None else None
    with atomic_folder(target) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        write_weights(tmp, state, max_shard_size)
        origin, tokenizer_folder = _save_tokenizer(model, tmp, tokenizer, target)
        extra_files = getattr(model, "save_extra_files", None)  # a head's own files (e.g. modules.json)
        if callable(extra_files):
            overrides = {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case, "prompts": prompts,
                         "default_prompt_name": default_prompt_name, "similarity_fn_name": similarity_fn_name}
            settings = embedding_settings(model, tokenizer_folder, overrides, _max_positions(model, registry))
            _call_save_hook(extra_files, tmp, SaveContext(source_folder(model), settings, origin is not None))
        if origin is None and tokenizer is not False and callable(extra_files):  # head files (modules.json) need one
            warnings.warn(
                f"{type(model).__name__} saved to {str(target)!r} without a tokenizer: the model was not loaded from a "
                "folder holding one; pass save_pretrained(..., tokenizer=<folder or tokenizer>) so transformers and "
                "sentence-transformers can load the folder (tokenizer=False silences this)", UserWarning, stacklevel=3)
        elif origin is None:
            logger.info("%s saved without a tokenizer (none given, none in its source folder)", type(model).__name__)
        card = target / CARD_FILE
        if model_card and not (card.is_file() and not is_bertzoo_card(card)):
            (tmp / CARD_FILE).write_text(render_model_card(
                tmp, config=config, name=str(config.get("bertzoo", {}).get("name") or target.name),
                source=getattr(model, "name_or_path", None), tokenizer=origin,
                parameters=sum(t.numel() for t in state.values()), report=report), encoding="utf-8")
        if target.is_dir():
            _keep_other_files(target, tmp)
    logger.info("saved %s to %s", type(model).__name__, target)
    return target


class PretrainedMixin:
    """``model.save_pretrained(dir)`` and ``model.push_to_hub(repo_id)`` for the trunk and the heads
    (mixed into their classes)."""

    def save_pretrained(self, save_directory: str | os.PathLike[str], *, max_shard_size: int | str | None = None,
                        registry: Registry | None = None, **options: Any) -> Path:
        """Write a folder transformers and sentence-transformers load unchanged; see
        :func:`bertzoo.checkpoint.save.save_pretrained` for ``options`` (``tokenizer=``, ``prompts=``,
        ``verify_report=``, ...)."""
        assert isinstance(self, nn.Module)
        return save_pretrained(self, save_directory, max_shard_size=max_shard_size, registry=registry, **options)

    def push_to_hub(self, repo_id: str, **options: Any) -> Any:
        """Save to a temporary folder and upload it; see :func:`bertzoo.checkpoint.push.push_to_hub`."""
        from bertzoo.checkpoint.push import push_to_hub

        return push_to_hub(self, repo_id, **options)


__all__ = ["PretrainedMixin", "parse_size", "save_pretrained", "state_dict_for_save", "write_weights"]

"""save_pretrained: write what transformers writes, atomically.

config.json, then model.safetensors (or ``model-0000i-of-0000N.safetensors`` shards plus
``model.safetensors.index.json``), tied aliases omitted, all built in a temporary folder that
:func:`bertzoo._fs.atomic_folder` fsyncs and renames into place.

This module depends on the spec, the registry and ``bertzoo._fs`` only (never on the factory or
the model), so the trunk and the heads can mix in :class:`PretrainedMixin` without an import cycle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from bertzoo._fs import atomic_folder
from bertzoo.checkpoint.hf_config import hf_config_for, spec_of
from bertzoo.checkpoint.keys import alias_groups, file_key
from bertzoo.checkpoint.layout import CONFIG_NAME, SAFE_INDEX, SAFE_WEIGHTS
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


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    registry: Registry | None = None,
) -> Path:
    """Write ``model`` as a HuggingFace folder transformers loads with no missing or unexpected keys.

    Writes ``config.json`` and ``model.safetensors`` (or ``model-0000i-of-0000N.safetensors`` plus
    ``model.safetensors.index.json`` when ``max_shard_size`` splits it). Atomic: everything is
    written to a temporary folder next to the target, then renamed into place, so a crash leaves
    an existing folder as it was; a save killed mid-swap is finished or rolled back by the next
    save or load of the folder, which also deletes killed saves' temporaries (logged). A
    symlinked target stays a symlink (the folder it points to is replaced). Other files already
    in the folder (a tokenizer, a README) are kept; old weight files are replaced.

    Args:
        max_shard_size: bytes or a size string (``"20KB"``, ``"5GB"``); None = one file.

    Returns:
        The folder written.

    Raises:
        CheckpointError: the target is a file, ``max_shard_size`` is not a size, or the model was
            not built by bertzoo.
    """
    target = Path(save_directory).expanduser()
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"cannot save to {str(target)!r}: it is a file; give a folder path")
    config = hf_config_for(model, registry)
    state = state_dict_for_save(model, registry)
    with atomic_folder(target) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        write_weights(tmp, state, max_shard_size)
        extra_files = getattr(model, "save_extra_files", None)  # a head's own files (e.g. modules.json)
        if callable(extra_files):
            extra_files(tmp)
        if target.is_dir():
            _keep_other_files(target, tmp)
    logger.info("saved %s to %s", type(model).__name__, target)
    return target


class PretrainedMixin:
    """``model.save_pretrained(dir)`` for the trunk and the heads (mixed into their classes)."""

    def save_pretrained(self, save_directory: str | os.PathLike[str], *, max_shard_size: int | str | None = None,
                        registry: Registry | None = None) -> Path:
        """Write a HF-compatible folder; see :func:`bertzoo.checkpoint.save.save_pretrained`."""
        assert isinstance(self, nn.Module)
        return save_pretrained(self, save_directory, max_shard_size=max_shard_size, registry=registry)


__all__ = ["PretrainedMixin", "parse_size", "save_pretrained", "state_dict_for_save", "write_weights"]

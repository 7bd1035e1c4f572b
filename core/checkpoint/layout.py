"""The HuggingFace checkpoint layout: file names, key prefixes and the legacy renames (reference §2.5).

Facts every other checkpoint module reads, kept in one place; nothing here touches torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertzoo.errors import CheckpointError

CONFIG_NAME = "config.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"

BASE_PREFIX = "bert."  # HF's base_model_prefix: where head models keep the trunk
TRUNK_ROOTS = ("embeddings", "encoder", "pooler")  # top-level modules of the trunk
CORE_ROOTS = ("embeddings", "encoder")  # trunk parts every checkpoint must provide
# HF's pooler weights: a model without a pooler (token-level heads) ignores them, as transformers 4 did
# (``_keys_to_ignore_on_load_unexpected = [r"pooler"]``).
POOLER_KEYS = ("pooler.dense.weight", "pooler.dense.bias")
# Non-persistent buffers that old files still carry (reference §2.2); never weights.
STALE_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
# The only legacy renames transformers applies (reference §2.5): LayerNorm's TF-era names.
LEGACY_RENAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))
# The architecture name written for (and read as) a bare trunk.
TRUNK_ARCHITECTURE = "BertModel"
# hf_architecture a head registers to be chosen for a sentence-transformers folder by head="auto".
SENTENCE_TRANSFORMERS_ARCHITECTURE = "SentenceTransformer"


def strip_base(key: str) -> str:
    """``bert.encoder.x`` → ``encoder.x``; other keys unchanged."""
    return key[len(BASE_PREFIX):] if key.startswith(BASE_PREFIX) else key


def short_list(items: list[str], limit: int = 12) -> str:
    """The first ``limit`` items, comma-joined, with a count of the rest (for one-line messages)."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _hub_blobs(root: Path) -> Path | None:
    """The ``blobs`` folder of the HF cache repo a snapshot folder belongs to (its files link there)."""
    for folder in (root, *root.parents):
        if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
            return folder.parent.parent / "blobs"
    return None


def contained_path(root: Path, name: object, what: str) -> Path:
    """``root / name`` for a path a checkpoint file names (a shard, a module folder), when it stays
    inside ``root`` after resolving ``..`` and symlinks (a HF cache snapshot's links into its
    repo's ``blobs`` folder are inside).

    Raises:
        CheckpointError: not a relative path inside ``root``, naming ``what``, the cause and the fix.
    """
    if not isinstance(name, str):
        raise CheckpointError(f"{what} is {name!r}, not a path; fix or re-download the checkpoint")
    base = root.resolve()
    real = (root / name).resolve()
    blobs = _hub_blobs(base)
    inside = real.is_relative_to(base) or (blobs is not None and real.is_relative_to(blobs))
    if Path(name).is_absolute() or not inside:
        raise CheckpointError(
            f"{what} names {name!r}, which resolves to {str(real)!r}, outside the checkpoint folder {str(base)!r}; "
            "a checkpoint may only name files inside its own folder: fix the entry, or copy the file into the "
            "folder (not a symlink to elsewhere) if you trust it"
        )
    return root / name


def read_json(path: Path) -> Any:
    """A checkpoint's JSON file.

    Raises:
        CheckpointError: unreadable or invalid JSON, naming the file and the fix.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc}); re-download or rewrite the file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(path)!r} ({exc}); check the path and its permissions") from None


__all__ = [
    "BASE_PREFIX", "CONFIG_NAME", "CORE_ROOTS", "LEGACY_RENAMES", "PICKLE_INDEX", "PICKLE_WEIGHTS", "SAFE_INDEX",
    "SAFE_WEIGHTS", "SENTENCE_TRANSFORMERS_ARCHITECTURE", "STALE_BUFFERS", "TRUNK_ARCHITECTURE", "TRUNK_ROOTS",
    "contained_path", "read_json", "short_list", "strip_base",
]

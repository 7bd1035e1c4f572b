"""sentence-transformers folders: reading ``modules.json`` and the pooling config, and writing them back.

This module is the one owner of sentence-transformers' pooling keys (:data:`POOLING_MODE_KEYS`),
read here and written by the sentence-embedding head through :func:`write_sentence_transformers_files`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertzoo.checkpoint.hub import resolve_model_dir
from bertzoo.checkpoint.layout import contained_path, read_json
from bertzoo.errors import CheckpointError

# sentence-transformers' legacy boolean keys → mode names, in the order it reads them
# (sentence_transformers/models/Pooling.py); older configs carry only these.
POOLING_MODE_KEYS: dict[str, str] = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_FOLDER = "1_Pooling"
NORMALIZE_FOLDER = "2_Normalize"
_MODULE_TYPE = "sentence_transformers.models.{}"


@dataclass(frozen=True)
class SentenceTransformerInfo:
    """What a sentence-transformers folder (``modules.json``) says about embedding with it.

    Attributes:
        folder: the sentence-transformers folder.
        transformer_path: folder of the Transformer module (config.json + weights); often ``folder`` itself.
        pooling_mode: ``"mean"``, ``"cls"``, ``"max"``, ``"mean_sqrt_len_tokens"``, ``"weightedmean"``
            or ``"lasttoken"``; several modes (concatenated by ST) are joined with ``"+"``.
        normalize: a Normalize module follows pooling (L2-normalised embeddings).
        max_seq_length: truncation length from ``sentence_bert_config.json`` (None if absent).
        do_lower_case: sentence-transformers' own lowercasing flag (None if absent).
        embedding_dimension: the pooling config's word-embedding dimension (None if absent).
        include_prompt: whether prompt tokens are pooled (ST default True).
        modules: the module types in order (e.g. ``("Transformer", "Pooling", "Normalize")``).
    """

    folder: Path
    transformer_path: Path
    pooling_mode: str = "mean"
    normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool | None = None
    embedding_dimension: int | None = None
    include_prompt: bool = True
    modules: tuple[str, ...] = ()

    @property
    def pooling_modes(self) -> tuple[str, ...]:
        return tuple(self.pooling_mode.split("+"))


def pooling_modes_of(config: dict[str, Any]) -> list[str]:
    """The pooling mode(s) a ``1_Pooling/config.json`` names: ``pooling_mode`` (newer ST: a name or a
    list), else the legacy ``pooling_mode_*`` booleans."""
    mode = config.get("pooling_mode")
    if mode is None:
        return [name for key, name in POOLING_MODE_KEYS.items() if config.get(key)]
    return [mode] if isinstance(mode, str) else list(mode)


def read_sentence_transformers_info(path_or_id: str | os.PathLike[str], revision: str | None = None
                                    ) -> SentenceTransformerInfo | None:
    """Read a sentence-transformers folder's module list, pooling and max length.

    Returns None when the folder has no ``modules.json`` (a plain HF folder).

    Raises:
        CheckpointError: unreadable files, no Transformer module in ``modules.json``, or a module
            path outside the folder.
    """
    folder = resolve_model_dir(path_or_id, revision)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = read_json(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise CheckpointError(f"{str(modules_file)!r} must hold a list of module objects; re-export the model")
    kinds = tuple(str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules)
    transformer = next((m for m, k in zip(modules, kinds, strict=True) if k == "Transformer"), None)
    if transformer is None:
        raise CheckpointError(
            f"{str(modules_file)!r} lists no Transformer module (types: {', '.join(kinds) or 'none'}); "
            "bertzoo reads sentence-transformers folders whose first module is a Transformer"
        )
    transformer_path = contained_path(folder, transformer.get("path", ""), f"{str(modules_file)!r} Transformer path")
    pooling_mode, dimension, include_prompt = "mean", None, True
    pooling = next((m for m, k in zip(modules, kinds, strict=True) if k == "Pooling"), None)
    if pooling is not None:
        pooling_file = contained_path(folder, pooling.get("path", ""), f"{str(modules_file)!r} Pooling path") / "config.json"
        if pooling_file.is_file():
            cfg = read_json(pooling_file)
            modes = pooling_modes_of(cfg)
            pooling_mode = "+".join(modes) if modes else "mean"
            dimension = cfg.get("word_embedding_dimension", cfg.get("embedding_dimension"))
            include_prompt = bool(cfg.get("include_prompt", True))
    max_seq_length, do_lower_case = None, None
    for cfg_file in (transformer_path / "sentence_bert_config.json", folder / "sentence_bert_config.json"):
        if cfg_file.is_file():
            cfg = read_json(cfg_file)
            max_seq_length, do_lower_case = cfg.get("max_seq_length"), cfg.get("do_lower_case")
            break
    return SentenceTransformerInfo(
        folder=folder, transformer_path=transformer_path, pooling_mode=pooling_mode,
        normalize="Normalize" in kinds, max_seq_length=max_seq_length, do_lower_case=do_lower_case,
        embedding_dimension=dimension, include_prompt=include_prompt, modules=kinds,
    )


def pooling_config(pooling_mode: str, dimension: int) -> dict[str, Any]:
    """``1_Pooling/config.json`` for one mode, in the legacy boolean form every ST version reads."""
    config: dict[str, Any] = {"word_embedding_dimension": dimension}
    config.update({key: pooling_mode == mode for key, mode in POOLING_MODE_KEYS.items()})
    return config


def write_sentence_transformers_files(folder: str | os.PathLike[str], *, pooling_mode: str, normalize: bool,
                                      dimension: int) -> None:
    """Write ``modules.json`` and ``1_Pooling/config.json`` next to a saved trunk (``folder`` holds
    config.json and the weights), so sentence-transformers, and bertzoo, load it with the same
    pooling and normalisation. Call it inside the save's temporary folder: the save makes it atomic."""
    root = Path(folder)
    names = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = {"Transformer": "", "Pooling": POOLING_FOLDER, "Normalize": NORMALIZE_FOLDER}
    modules = [{"idx": i, "name": str(i), "path": paths[name], "type": _MODULE_TYPE.format(name)}
               for i, name in enumerate(names)]
    (root / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (root / POOLING_FOLDER).mkdir(exist_ok=True)
    (root / POOLING_FOLDER / "config.json").write_text(
        json.dumps(pooling_config(pooling_mode, dimension), indent=2) + "\n", encoding="utf-8")


__all__ = [
    "NORMALIZE_FOLDER", "POOLING_FOLDER", "POOLING_MODE_KEYS", "SentenceTransformerInfo", "pooling_config",
    "pooling_modes_of", "read_sentence_transformers_info", "write_sentence_transformers_files",
]

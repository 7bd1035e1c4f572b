"""What a save copies from where the model came from: its tokenizer files and its sentence-transformers settings.

``bertzoo.from_pretrained`` records the source on the model: ``model.load_report.source`` (the
folder holding config.json, the weights and normally the tokenizer; for a hub id, the local
snapshot) and ``model.sentence_transformers_info`` (a ``modules.json`` folder's settings:
prompts, max length, ...). A model made by ``bertzoo.build`` has neither; its tokenizer must be
given to ``save_pretrained(tokenizer=...)``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from bertzoo.checkpoint.layout import read_json
from bertzoo.errors import CheckpointError

logger = logging.getLogger(__name__)

# every file transformers' tokenizers read or write (the first two are what bertzoo's Tokenizer prefers)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
)
# what a folder needs for any tokenizer to load from it
_TOKENIZER_CORE = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model")
# transformers writes model_max_length = int(1e30) when a tokenizer has no limit of its own
_NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class EmbeddingSettings:
    """The sentence-transformers settings a save of an embedding model writes (see
    :func:`bertzoo.checkpoint.sentence_transformers.write_sentence_transformers_files`)."""

    max_seq_length: int | None = None
    do_lower_case: bool = False
    include_prompt: bool = True
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    truncate_dim: int | None = None


@dataclass(frozen=True)
class SaveContext:
    """What ``save_pretrained`` hands a head's ``save_extra_files(folder, context)`` hook.

    Attributes:
        source: the folder the model was loaded from (None: built, not loaded).
        embedding: the sentence-transformers settings to write.
        tokenizer_written: whether the save wrote tokenizer files.
    """

    source: Path | None
    embedding: EmbeddingSettings
    tokenizer_written: bool


def source_folder(model: nn.Module) -> Path | None:
    """The folder holding the model's config, weights and (normally) tokenizer, or None when the
    model was not loaded by ``from_pretrained`` or the folder is gone."""
    report = getattr(model, "load_report", None)
    source = getattr(report, "source", "") or ""
    folder = Path(source) if source else None
    return folder if folder is not None and folder.is_dir() else None


def has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_CORE)


def copy_tokenizer_files(source: Path, target: Path) -> list[str]:
    """Copy the tokenizer files of ``source`` into ``target``; returns the names copied."""
    copied = []
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)  # the content: a hub snapshot holds symlinks
            copied.append(name)
    return copied


def write_tokenizer(tokenizer: Any, target: Path) -> str:
    """Write ``tokenizer`` into ``target``; returns where it came from, for messages and the card.

    ``tokenizer`` is a folder (its tokenizer files are copied), a transformers tokenizer (its own
    ``save_pretrained``), or a :class:`bertzoo.inference.tokenizer.Tokenizer` (the files of the
    folder it was read from; one built in memory is written as ``tokenizer.json`` plus a
    ``tokenizer_config.json`` naming its special tokens and maximum length).

    Raises:
        CheckpointError: a folder without tokenizer files, or an object that is none of these.
    """
    if isinstance(tokenizer, str | Path):
        folder = Path(tokenizer).expanduser()
        if not (folder.is_dir() and has_tokenizer(folder)):
            raise CheckpointError(f"tokenizer={str(tokenizer)!r} is not a folder holding tokenizer files "
                                  f"({', '.join(_TOKENIZER_CORE)}); pass the folder the tokenizer lives in")
        copy_tokenizer_files(folder, target)
        return str(folder)
    if callable(getattr(tokenizer, "save_pretrained", None)):  # a transformers tokenizer
        tokenizer.save_pretrained(str(target))
        return f"{type(tokenizer).__name__} {getattr(tokenizer, 'name_or_path', '')}".strip()
    backend = getattr(tokenizer, "backend", None)
    if backend is None or not callable(getattr(backend, "to_str", None)):
        raise CheckpointError(
            f"tokenizer= must be a folder, a transformers tokenizer or a bertzoo Tokenizer, not "
            f"{type(tokenizer).__name__}; pass the folder holding tokenizer.json or vocab.txt")
    source = Path(str(getattr(tokenizer, "source", "")))
    if source.is_file() and has_tokenizer(source.parent):
        copy_tokenizer_files(source.parent, target)
        return str(source.parent)
    (target / "tokenizer.json").write_text(backend.to_str(), encoding="utf-8")
    config: dict[str, Any] = {f"{role}_token": tok for role, tok in getattr(tokenizer, "special_tokens", {}).items()}
    if getattr(tokenizer, "max_length", None):
        config["model_max_length"] = int(tokenizer.max_length)
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                                                  encoding="utf-8")
    return "an in-memory bertzoo Tokenizer"


def _tokenizer_max_length(folder: Path | None) -> int | None:
    if folder is None or not (folder / "tokenizer_config.json").is_file():
        return None
    value = read_json(folder / "tokenizer_config.json").get("model_max_length")
    return int(value) if isinstance(value, int | float) and 0 < value <= _NO_LIMIT else None


def embedding_settings(model: nn.Module, tokenizer_folder: Path | None, overrides: dict[str, Any],
                       max_positions: int) -> EmbeddingSettings:
    """The settings of a save of an embedding model: each ``overrides`` value that is not None, else
    the source sentence-transformers folder's, else defaults (max length: the smallest of the model's
    positions and the tokenizer's ``model_max_length``, as bertzoo and sentence-transformers resolve it)."""
    info = getattr(model, "sentence_transformers_info", None)
    saved: dict[str, Any] = {}
    if info is not None:  # a SentenceTransformerInfo (bertzoo.checkpoint.sentence_transformers)
        saved = {
            "max_seq_length": info.max_seq_length, "do_lower_case": bool(info.do_lower_case or False),
            "include_prompt": bool(info.include_prompt), "prompts": dict(info.prompts),
            "default_prompt_name": info.default_prompt_name, "similarity_fn_name": info.similarity_fn_name,
            "truncate_dim": info.truncate_dim,
        }
    values = {**saved, **{k: v for k, v in overrides.items() if v is not None}}
    if values.get("max_seq_length") is None:
        limits = [max_positions, _tokenizer_max_length(tokenizer_folder)]
        values["max_seq_length"] = min(x for x in limits if x is not None)
    return EmbeddingSettings(**values)


__all__ = ["TOKENIZER_FILES", "EmbeddingSettings", "SaveContext", "copy_tokenizer_files", "embedding_settings",
           "has_tokenizer", "source_folder", "write_tokenizer"]

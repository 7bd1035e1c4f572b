"""sentence-transformers folders: reading ``modules.json``, the pooling config and
``config_sentence_transformers.json`` (prompts, similarity), and writing the module files back.

This module is the one owner of sentence-transformers' pooling keys (:data:`POOLING_MODE_KEYS`),
read here and written by the sentence-embedding head through :func:`write_sentence_transformers_files`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
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
MODEL_CONFIG_FILE = "config_sentence_transformers.json"
SIMILARITY_FN_NAMES: tuple[str, ...] = ("cosine", "dot", "euclidean", "manhattan")
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
        prompts: ``config_sentence_transformers.json``'s ``prompts`` (name -> text prepended to
            each input), as saved (sentence-transformers adds empty ``query`` / ``document`` ones).
        default_prompt_name: the prompt applied when a call names none (None: no prompt).
        similarity_fn_name: ``cosine``, ``dot``, ``euclidean`` or ``manhattan`` (None if not saved;
            sentence-transformers then uses cosine).
        truncate_dim: the saved output width cut (None: full width).
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
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    truncate_dim: int | None = None

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
    model_config = read_model_config(folder)
    return SentenceTransformerInfo(
        folder=folder, transformer_path=transformer_path, pooling_mode=pooling_mode,
        normalize="Normalize" in kinds, max_seq_length=max_seq_length, do_lower_case=do_lower_case,
        embedding_dimension=dimension, include_prompt=include_prompt, modules=kinds,
        prompts=model_config["prompts"], default_prompt_name=model_config["default_prompt_name"],
        similarity_fn_name=model_config["similarity_fn_name"], truncate_dim=model_config["truncate_dim"],
    )


def read_model_config(folder: Path) -> dict[str, Any]:
    """``config_sentence_transformers.json``'s prompts, default prompt name, similarity function and
    truncate_dim (each None / empty when the file or the key is absent), checked.

    Raises:
        CheckpointError: an unreadable file, prompts that are not a name -> text object, an unknown
            similarity function or a bad truncate_dim.
    """
    path = folder / MODEL_CONFIG_FILE
    config = read_json(path) if path.is_file() else {}
    where = repr(str(path))
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} must hold a JSON object; re-export the model")
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str | None)
                                                 for k, v in prompts.items()):
        raise CheckpointError(f"{where}: 'prompts' must map prompt names to strings; fix or remove the key")
    default = config.get("default_prompt_name")
    if default is not None and not isinstance(default, str):
        raise CheckpointError(f"{where}: 'default_prompt_name' must be a string or null, got {default!r}")
    similarity = config.get("similarity_fn_name")
    if similarity is not None and similarity not in SIMILARITY_FN_NAMES:
        # sentence-transformers ignores names it does not support (multi-vector "maxsim"): so do we
        similarity = None
    truncate_dim = config.get("truncate_dim")
    if truncate_dim is not None and (isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int)
                                     or truncate_dim < 1):
        raise CheckpointError(f"{where}: 'truncate_dim' must be a positive integer or null, got {truncate_dim!r}")
    return {"prompts": {k: v or "" for k, v in prompts.items()}, "default_prompt_name": default,
            "similarity_fn_name": similarity, "truncate_dim": truncate_dim}


# -- writing: the files sentence-transformers reads (the reader above reads them back) -----------------

SENTENCE_BERT_CONFIG_FILE = "sentence_bert_config.json"


def pooling_config(pooling_mode: str, dimension: int, include_prompt: bool = True) -> dict[str, Any]:
    """``1_Pooling/config.json`` for one mode, in the legacy boolean form every ST version reads."""
    config: dict[str, Any] = {"word_embedding_dimension": dimension}
    config.update({key: pooling_mode == mode for key, mode in POOLING_MODE_KEYS.items()})
    config["include_prompt"] = bool(include_prompt)
    return config


def sentence_bert_config(max_seq_length: int | None, do_lower_case: bool = False) -> dict[str, Any]:
    """``sentence_bert_config.json``: the Transformer module's truncation length (special tokens
    included) and its own lower-casing flag, in the form every sentence-transformers version reads
    (6.x maps ``max_seq_length`` onto the tokenizer's ``model_max_length``)."""
    config: dict[str, Any] = {"do_lower_case": bool(do_lower_case)}
    if max_seq_length is not None:
        config["max_seq_length"] = int(max_seq_length)
    return dict(sorted(config.items()))


def _installed_versions() -> dict[str, str]:
    """The ``__version__`` block as sentence-transformers writes it (its own, transformers', torch as
    ``pytorch``), for the packages installed here, plus bertzoo's (sentence-transformers ignores it)."""
    from importlib import metadata

    from bertzoo import __version__

    versions = {"bertzoo": __version__}
    for key, dist in (("sentence_transformers", "sentence-transformers"), ("transformers", "transformers"),
                      ("pytorch", "torch")):
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return dict(sorted(versions.items()))


def config_sentence_transformers(*, prompts: dict[str, str] | None = None, default_prompt_name: str | None = None,
                                 similarity_fn_name: str | None = None, truncate_dim: int | None = None
                                 ) -> dict[str, Any]:
    """``config_sentence_transformers.json`` as sentence-transformers 6 writes it: ``model_type``,
    the ``__version__`` block, ``prompts``, ``default_prompt_name``, ``similarity_fn_name``
    (``cosine`` when not given, its default) and ``truncate_dim`` when set.

    Raises:
        CheckpointError: a default prompt name that is not one of ``prompts``, prompts that are not
            name -> text, or an unknown similarity function.
    """
    prompts = dict(prompts or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise CheckpointError(f"prompts must map prompt names to strings, got {prompts!r}; pass e.g. "
                              "{'query': 'query: ', 'document': 'passage: '}")
    if default_prompt_name is not None and default_prompt_name not in prompts:
        raise CheckpointError(
            f"default_prompt_name {default_prompt_name!r} is not one of the prompts ({', '.join(prompts) or 'none'}); "
            "add it to prompts or pass one of those names")
    if similarity_fn_name is not None and similarity_fn_name not in SIMILARITY_FN_NAMES:
        raise CheckpointError(f"similarity_fn_name {similarity_fn_name!r} is not one of "
                              f"{', '.join(SIMILARITY_FN_NAMES)}; pass one of those")
    config: dict[str, Any] = {
        "__version__": _installed_versions(), "model_type": "SentenceTransformer", "prompts": prompts,
        "default_prompt_name": default_prompt_name, "similarity_fn_name": similarity_fn_name or "cosine",
    }
    if truncate_dim is not None:
        config["truncate_dim"] = int(truncate_dim)
    return config


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_sentence_transformers_files(folder: str | os.PathLike[str], *, pooling_mode: str, normalize: bool,
                                      dimension: int, max_seq_length: int | None = None, do_lower_case: bool = False,
                                      include_prompt: bool = True, prompts: dict[str, str] | None = None,
                                      default_prompt_name: str | None = None, similarity_fn_name: str | None = None,
                                      truncate_dim: int | None = None) -> None:
    """Write what sentence-transformers needs besides the trunk and the tokenizer, next to a saved
    trunk (``folder`` holds config.json and the weights): ``modules.json`` (Transformer, Pooling,
    Normalize when ``normalize``), ``1_Pooling/config.json``, ``sentence_bert_config.json`` and
    ``config_sentence_transformers.json`` (see :func:`config_sentence_transformers`). bertzoo reads
    the same files back with :func:`read_sentence_transformers_info`. Writes plain files: call it
    inside the save's temporary folder (``bertzoo._fs.atomic_folder``), which makes the save atomic.

    Raises:
        CheckpointError: bad prompts or similarity function (see :func:`config_sentence_transformers`).
    """
    root = Path(folder)
    model_config = config_sentence_transformers(prompts=prompts, default_prompt_name=default_prompt_name,
                                                similarity_fn_name=similarity_fn_name, truncate_dim=truncate_dim)
    names = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = {"Transformer": "", "Pooling": POOLING_FOLDER, "Normalize": NORMALIZE_FOLDER}
    modules = [{"idx": i, "name": str(i), "path": paths[name], "type": _MODULE_TYPE.format(name)}
               for i, name in enumerate(names)]
    (root / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (root / POOLING_FOLDER).mkdir(exist_ok=True)
    _write_json(root / POOLING_FOLDER / "config.json", pooling_config(pooling_mode, dimension, include_prompt))
    _write_json(root / SENTENCE_BERT_CONFIG_FILE, sentence_bert_config(max_seq_length, do_lower_case))
    _write_json(root / MODEL_CONFIG_FILE, model_config)


__all__ = [
    "MODEL_CONFIG_FILE", "NORMALIZE_FOLDER", "POOLING_FOLDER", "POOLING_MODE_KEYS", "SIMILARITY_FN_NAMES",
    "SentenceTransformerInfo", "pooling_config", "pooling_modes_of", "read_model_config",
    "read_sentence_transformers_info", "write_sentence_transformers_files",
    "SENTENCE_BERT_CONFIG_FILE", "config_sentence_transformers", "sentence_bert_config",
]

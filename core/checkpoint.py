"""Checkpoint I/O: HuggingFace folders in, HuggingFace folders out.

Module names are HF's keys, so loading is a key-and-shape check plus a short, explicit list of
legacy fixes (reference §2.5):

- the ``bert.`` prefix is stripped (trunk target) or added (head target) as the model needs;
- ``LayerNorm.gamma`` / ``LayerNorm.beta`` → ``LayerNorm.weight`` / ``LayerNorm.bias``;
- the stale ``embeddings.position_ids`` buffer of old files is dropped silently;
- tied tensors (MLM ``cls.predictions.decoder.{weight,bias}``) load from whichever alias the
  file has; a file whose decoder *differs* from the word embeddings unties them, as
  transformers 5 does.

``from_pretrained`` returns the model with a :class:`LoadReport` at ``model.load_report``.
``save_pretrained`` writes what transformers writes (config.json, model.safetensors or shards
plus index, tied aliases omitted) into a temporary folder and renames it into place.

Head contract (heads live in ``bertzoo.heads``; see docs/architecture.md "Checkpoints"): the
trunk sits at ``.bert``; class attributes ``uses_pooler`` and ``classifier_keys``; registry
metadata ``hf_architecture``; optional classmethods ``options_from_hf_config(config)``,
``hf_config_from_options(options)`` and ``options_from_sentence_transformers(info)``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bertzoo.errors import CheckpointError, ComponentNotFoundError
from bertzoo.hub import resolve_model_dir
from bertzoo.spec import ModelSpec

if TYPE_CHECKING:
    from bertzoo.registry import ComponentRecord, Registry

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"

BASE_PREFIX = "bert."  # HF's base_model_prefix: where head models keep the trunk
TRUNK_ROOTS = ("embeddings", "encoder", "pooler")  # top-level modules of the trunk
CORE_ROOTS = ("embeddings", "encoder")  # trunk parts every checkpoint must provide
# Non-persistent buffers that old files still carry (reference §2.2); never weights.
STALE_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
# The only legacy renames transformers applies (reference §2.5): LayerNorm's TF-era names.
LEGACY_RENAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))
# The architecture name written for (and read as) a bare trunk.
TRUNK_ARCHITECTURE = "BertModel"
# hf_architecture a head registers to be chosen for a sentence-transformers folder by head="auto".
SENTENCE_TRANSFORMERS_ARCHITECTURE = "SentenceTransformer"

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float64": torch.float64,
}


# -- the report -----------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What happened to every key when a checkpoint was loaded.

    Attributes:
        source: the folder the weights came from.
        files: weight files read.
        missing: model keys absent from the checkpoint (left at their initial values).
        unexpected: checkpoint keys the model has no place for (ignored).
        mismatched: ``(key, checkpoint_shape, model_shape)`` for keys whose shapes differ (not loaded).
        newly_initialized: every model key whose value did not come from the checkpoint.
        expected_new: the subset of missing/mismatched keys that are new by design (head keys
            loaded from a trunk checkpoint, a pooler the file lacks, a classifier re-sized by
            ``num_labels``); ``strict=True`` does not raise for them.
        renamed: ``(file key, model key)`` for legacy renames (``gamma``/``beta``).
        dropped: stale buffers skipped silently (``embeddings.position_ids``).
        untied: tied keys the file gave different values for, now separate parameters.
    """

    source: str = ""
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    newly_initialized: list[str] = field(default_factory=list)
    expected_new: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    untied: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every model key loaded, nothing left over."""
        return not (self.missing or self.unexpected or self.mismatched or self.untied)

    def problems(self) -> list[str]:
        """Keys ``strict=True`` refuses: missing or mismatched keys not new by design, and
        unexpected trunk keys (embeddings/encoder: the checkpoint is a different architecture)."""
        fresh = set(self.expected_new)
        out = [f"missing {k}" for k in self.missing if k not in fresh]
        out += [f"shape mismatch {k}: checkpoint {tuple(a)} vs model {tuple(b)}"
                for k, a, b in self.mismatched if k not in fresh]
        out += [f"unexpected {k}" for k in self.unexpected if _strip_base(k).split(".", 1)[0] in CORE_ROOTS]
        return out

    def summary(self) -> str:
        if self.clean:
            return f"loaded every key from {self.source}"
        lines = [f"load report for {self.source}:"]
        for title, keys in (("MISSING", self.missing), ("UNEXPECTED", self.unexpected), ("UNTIED", self.untied)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): {_short_list(keys)}")
        if self.mismatched:
            lines.append(f"  MISMATCHED ({len(self.mismatched)}): " + _short_list(
                [f"{k} checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]))
        if self.newly_initialized:
            lines.append(f"  newly initialised ({len(self.newly_initialized)}): {_short_list(self.newly_initialized)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """transformers' ``output_loading_info`` names, plus ours."""
        return {
            "missing_keys": list(self.missing), "unexpected_keys": list(self.unexpected),
            "mismatched_keys": [(k, tuple(a), tuple(b)) for k, a, b in self.mismatched],
            "newly_initialized_keys": list(self.newly_initialized), "expected_new_keys": list(self.expected_new),
            "renamed_keys": list(self.renamed), "dropped_keys": list(self.dropped), "untied_keys": list(self.untied),
        }


def _short_list(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _strip_base(key: str) -> str:
    return key[len(BASE_PREFIX):] if key.startswith(BASE_PREFIX) else key


# -- sentence-transformers folders -----------------------------------------------------------------
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


# ST's legacy boolean keys → mode names (sentence_transformers/.../pooling.py)
_ST_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc}); re-download or rewrite the file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(path)!r} ({exc}); check the path and its permissions") from None


def read_sentence_transformers_info(path_or_id: str | os.PathLike[str], revision: str | None = None
                                    ) -> SentenceTransformerInfo | None:
    """Read a sentence-transformers folder's module list, pooling and max length.

    Returns None when the folder has no ``modules.json`` (a plain HF folder).

    Raises:
        CheckpointError: unreadable files, or no Transformer module in ``modules.json``.
    """
    folder = resolve_model_dir(path_or_id, revision)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = _read_json(modules_file)
    if not isinstance(modules, list):
        raise CheckpointError(f"{str(modules_file)!r} must hold a list of modules; re-export the model")
    kinds = tuple(str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules)
    transformer = next((m for m, k in zip(modules, kinds, strict=True) if k == "Transformer"), None)
    if transformer is None:
        raise CheckpointError(
            f"{str(modules_file)!r} lists no Transformer module (types: {', '.join(kinds) or 'none'}); "
            "bertzoo reads sentence-transformers folders whose first module is a Transformer"
        )
    transformer_path = folder / str(transformer.get("path", ""))
    pooling_mode, dimension, include_prompt = "mean", None, True
    pooling = next((m for m, k in zip(modules, kinds, strict=True) if k == "Pooling"), None)
    if pooling is not None:
        pooling_file = folder / str(pooling.get("path", "")) / "config.json"
        if pooling_file.is_file():
            cfg = _read_json(pooling_file)
            mode = cfg.get("pooling_mode")  # newer ST: one name or a list
            if mode is None:
                modes = [name for key, name in _ST_POOLING_KEYS.items() if cfg.get(key)]
            else:
                modes = [mode] if isinstance(mode, str) else list(mode)
            pooling_mode = "+".join(modes) if modes else "mean"
            dimension = cfg.get("word_embedding_dimension", cfg.get("embedding_dimension"))
            include_prompt = bool(cfg.get("include_prompt", True))
    max_seq_length, do_lower_case = None, None
    for cfg_file in (transformer_path / "sentence_bert_config.json", folder / "sentence_bert_config.json"):
        if cfg_file.is_file():
            cfg = _read_json(cfg_file)
            max_seq_length, do_lower_case = cfg.get("max_seq_length"), cfg.get("do_lower_case")
            break
    return SentenceTransformerInfo(
        folder=folder, transformer_path=transformer_path, pooling_mode=pooling_mode,
        normalize="Normalize" in kinds, max_seq_length=max_seq_length, do_lower_case=do_lower_case,
        embedding_dimension=dimension, include_prompt=include_prompt, modules=kinds,
    )


# -- reading weights ------------------------------------------------------------------------------
def weight_files(folder: Path, *, allow_pickle: bool = False) -> list[Path]:
    """The weight files of a folder, in transformers' priority order (reference §2.5).

    Raises:
        CheckpointError: no weights; only pickle weights without ``allow_pickle``; a shard
            named by an index that is not there.
    """
    if (folder / SAFE_WEIGHTS).is_file():
        return [folder / SAFE_WEIGHTS]
    if (folder / SAFE_INDEX).is_file():
        return _shards(folder, SAFE_INDEX)
    pickles = [name for name in (PICKLE_WEIGHTS, PICKLE_INDEX) if (folder / name).is_file()]
    if pickles and not allow_pickle:
        raise CheckpointError(
            f"{str(folder)!r} holds only pickle weights ({', '.join(pickles)}), which can run code when "
            "loaded; pass allow_pickle=True to load them with torch.load(weights_only=True), or convert "
            "once: bertzoo.from_pretrained(folder, allow_pickle=True).save_pretrained(new_folder)"
        )
    if (folder / PICKLE_WEIGHTS).is_file():
        return [folder / PICKLE_WEIGHTS]
    if (folder / PICKLE_INDEX).is_file():
        return _shards(folder, PICKLE_INDEX)
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise CheckpointError(
        f"{str(folder)!r} has no weights: expected {SAFE_WEIGHTS} or {SAFE_INDEX}"
        f"{'' if not allow_pickle else f' (or {PICKLE_WEIGHTS})'}; found {', '.join(present) or 'nothing'}. "
        "Save a model there with save_pretrained, or point at the folder that holds the weights"
    )


def _shards(folder: Path, index_name: str) -> list[Path]:
    index = _read_json(folder / index_name)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{str(folder / index_name)!r} has no weight_map; re-download or re-save the checkpoint")
    files = [folder / name for name in sorted(set(weight_map.values()))]
    absent = [p.name for p in files if not p.is_file()]
    if absent:
        raise CheckpointError(
            f"{str(folder / index_name)!r} names shards that are not in the folder: {', '.join(absent)}; "
            "the download is incomplete: download the checkpoint again"
        )
    return files


def read_state_dict(files: Iterable[Path]) -> dict[str, torch.Tensor]:
    """Read tensors from safetensors (or, when listed, pickle ``.bin``) files onto the CPU.

    Raises:
        CheckpointError: a truncated or corrupted file (named, with the fix), or a key that two
            shards both hold.
    """
    state: dict[str, torch.Tensor] = {}
    for path in files:
        part = _read_safetensors(path) if path.suffix == ".safetensors" else _read_pickle(path)
        clash = state.keys() & part.keys()
        if clash:
            raise CheckpointError(f"{str(path)!r} repeats keys of another shard ({_short_list(sorted(clash))}); "
                                  "the checkpoint is inconsistent: re-save or re-download it")
        state.update(part)
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:  # type: ignore[no-untyped-call]
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # safetensors raises its own SafetensorError, or OSError / RuntimeError
        raise CheckpointError(
            f"{str(path)!r} is not a readable safetensors file ({type(exc).__name__}: {exc}); it is probably "
            "truncated or corrupted (an interrupted download or copy): delete it and download it again "
            "(`hf download <repo> --force-download`), or save the model again"
        ) from None


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{str(path)!r} could not be read with torch.load(weights_only=True) ({type(exc).__name__}: {exc}); "
            "it is truncated, corrupted or holds more than tensors: download it again or convert it to safetensors"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict of tensors; it is not a model checkpoint")
    return dict(data)


# -- mapping file keys onto the model -------------------------------------------------------------
def normalize_keys(
    state: Mapping[str, torch.Tensor], model_keys: Iterable[str], *, head_model: bool, report: LoadReport
) -> dict[str, torch.Tensor]:
    """File keys → model keys: stale buffers dropped, gamma/beta renamed, ``bert.`` stripped or added."""
    model_keys = set(model_keys)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        if not head_model:
            name = _strip_base(name)
        elif name.split(".", 1)[0] in TRUNK_ROOTS:
            name = BASE_PREFIX + name
        if _strip_base(name) in STALE_BUFFERS and name not in model_keys:
            report.dropped.append(key)
            continue
        for old, new in LEGACY_RENAMES:
            if name.endswith(old):
                name = name[: -len(old)] + new
        if name != key and _strip_base(name) != _strip_base(key):
            report.renamed.append((key, name))
        if name in out:
            raise CheckpointError(
                f"checkpoint keys {key!r} and another one both map to {name!r} (a file with and without the "
                "'bert.' prefix, or with both gamma and weight); keep one of them"
            )
        out[name] = value
    return out


def alias_groups(model: nn.Module) -> list[list[str]]:
    """State-dict names grouped by shared tensor; the canonical name (the one saved) first.

    Canonical = a trunk name before a head name, a non-``decoder`` name before a ``decoder`` one,
    then state-dict order; for BERT's MLM this keeps ``bert.embeddings.word_embeddings.weight`` and
    ``cls.predictions.bias`` and omits ``cls.predictions.decoder.*``, as transformers does.
    """
    state = model.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}
    order = {name: i for i, name in enumerate(state)}
    for name, tensor in state.items():
        groups.setdefault(id(tensor), []).append(name)

    def rank(name: str) -> tuple[int, int, int]:
        trunk = _strip_base(name).split(".", 1)[0] in TRUNK_ROOTS
        return (0 if trunk else 1, 1 if ".decoder." in f".{name}" else 0, order[name])

    return [sorted(names, key=rank) for names in groups.values()]


def _is_head_key(name: str, head_model: bool) -> bool:
    return head_model and not name.startswith(BASE_PREFIX)


def _reinit_keys(head_cls: Any) -> tuple[str, ...]:
    return tuple(getattr(head_cls, "classifier_keys", ()) or ())


def _matches(name: str, keys: tuple[str, ...]) -> bool:
    return any(name == k or name.startswith(k + ".") for k in keys)


def load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    report: LoadReport,
    reinitialize: tuple[str, ...] = (),
    assign: bool = False,
) -> None:
    """Copy normalised ``state`` into ``model`` and fill ``report`` (nothing raised here).

    Args:
        reinitialize: key prefixes (a head's ``classifier_keys``) whose shape mismatches are
            expected, because the caller changed ``num_labels``; they keep their fresh values.
        assign: ``model`` was built on the meta device: the file's tensors become its parameters
            (no copy, no random init first) and only what the file lacks is allocated and
            initialised (HF's rules), see :func:`_assign_state`.
    """
    head_model = isinstance(getattr(model, "bert", None), nn.Module)
    target = model.state_dict(keep_vars=True)
    # Are any of the model's own head keys in the file? If none, the head is new by design.
    file_has_head = any(_is_head_key(k, head_model) and k in target for k in state)
    file_has_pooler = any(_strip_base(k).startswith("pooler.") for k in state)
    to_load: dict[str, torch.Tensor] = {}
    for group in alias_groups(model):
        present = [name for name in group if name in state]
        if not present:
            report.missing.extend(group)
            report.newly_initialized.extend(group)
            first = group[0]
            if (_is_head_key(first, head_model) and not file_has_head) or (
                    _strip_base(first).startswith("pooler.") and not file_has_pooler):
                report.expected_new.extend(group)
            continue
        value = state[present[0]]
        expected = tuple(target[group[0]].shape)
        if tuple(value.shape) != expected:
            report.mismatched.append((present[0], tuple(value.shape), expected))
            report.newly_initialized.extend(group)
            if _matches(present[0], reinitialize):
                report.expected_new.extend(group)
            continue
        for name in group:
            to_load[name] = value
        # An alias the file holds with a different value: untie it (transformers 5 keeps the file's decoder).
        for name in present[1:]:
            other = state[name]
            if tuple(other.shape) == expected and torch.equal(other.to(value.dtype), value):
                continue
            if tuple(other.shape) != expected:
                report.mismatched.append((name, tuple(other.shape), expected))
                if _matches(name, reinitialize):
                    report.expected_new.append(name)
                continue
            module_name, _, attr = name.rpartition(".")
            module = model.get_submodule(module_name)
            old = getattr(module, attr)
            if isinstance(old, nn.Parameter):
                setattr(module, attr, nn.Parameter(old.detach().clone(), requires_grad=old.requires_grad))
                to_load[name] = other
                report.untied.append(name)
                logger.warning("%s differs from its tied weight %s in the checkpoint; untied (kept the file's values)",
                               name, present[0])
    model_names = set(target)
    report.unexpected.extend(k for k in state if k not in model_names)
    with torch.no_grad():
        if assign:
            _assign_state(model, to_load)
            return
        current = model.state_dict(keep_vars=True)
        for name, value in to_load.items():
            current[name].copy_(value)


@contextlib.contextmanager
def _no_torch_init() -> Iterator[None]:
    """``torch.nn.init`` functions as no-ops while modules are constructed on the meta device.

    A meta tensor's ``normal_`` runs through torch's Python reference kernels, whose first use
    imports ``torch._dynamo`` (about 1.4 s and 70 MB): ``nn.Embedding`` calls it in its
    constructor. Nothing is lost, the weights come from the checkpoint (transformers'
    ``no_init_weights`` does the same).
    """
    names = ("normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
             "trunc_normal_", "constant_", "zeros_", "ones_", "orthogonal_")
    saved = {name: getattr(nn.init, name) for name in names if hasattr(nn.init, name)}

    def skip(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    for name in saved:
        setattr(nn.init, name, skip)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


class _Modules(nn.Module):
    """A view whose ``modules()`` is exactly the given modules (not their children), for ``init_weights``."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self._only = modules

    def modules(self) -> Iterator[nn.Module]:  # type: ignore[override]
        return iter(self._only)


def _assign_state(model: nn.Module, to_load: Mapping[str, torch.Tensor], device: str = "cpu") -> None:
    """Load into a model built on the meta device: cold start without a random init or a second copy.

    1. Modules holding a tensor the file does not give (new head keys, non-persistent buffers such
       as ``position_ids``) get real storage for their meta tensors and HF's initialisation;
    2. then every loaded name gets the file's tensor (cast to the model's dtype), one Parameter per
       tied group, so ties survive.
    """
    from bertzoo.model import init_weights

    spec = getattr(model, "spec", None) or getattr(getattr(model, "bert", None), "spec", None)
    loaded = set(to_load)
    owners: dict[int, nn.Module] = {}
    for qualified, module in model.named_modules():
        prefix = f"{qualified}." if qualified else ""
        local = {**module._parameters, **module._buffers}
        if any(t is not None and t.is_meta and prefix + n not in loaded for n, t in local.items()):
            owners[id(module)] = module
    fresh: dict[int, torch.Tensor] = {}  # meta tensor id -> its replacement (tied tensors stay tied)
    for module in owners.values():
        for table in (module._parameters, module._buffers):
            for n, t in list(table.items()):
                if t is None or not t.is_meta:
                    continue
                if id(t) not in fresh:
                    empty = torch.empty_like(t, device=device)
                    fresh[id(t)] = nn.Parameter(empty, requires_grad=t.requires_grad) if isinstance(
                        t, nn.Parameter) else empty
                table[n] = fresh[id(t)]  # type: ignore[assignment]
    if owners and spec is not None:
        init_weights(_Modules(list(owners.values())), spec)
    current = model.state_dict(keep_vars=True)
    made: dict[int, torch.Tensor] = {}  # file tensor id -> the Parameter made from it
    for name, value in to_load.items():
        old = current[name]
        if id(value) not in made:
            data = value.to(device=device, dtype=old.dtype)
            made[id(value)] = nn.Parameter(data, requires_grad=old.requires_grad) if isinstance(
                old, nn.Parameter) else data
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        table = module._parameters if attr in module._parameters else module._buffers
        table[attr] = made[id(value)]  # type: ignore[assignment]


# -- from_pretrained ------------------------------------------------------------------------------
def _torch_dtype(dtype: Any, config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        return dtype
    text = str(dtype).replace("torch.", "").lower()
    if text == "auto":
        saved = config.get("dtype") or config.get("torch_dtype")
        if isinstance(saved, str) and saved.replace("torch.", "") in _DTYPES:
            return _DTYPES[saved.replace("torch.", "")]
        return next((v.dtype for v in state.values() if v.is_floating_point()), None)
    if text not in _DTYPES:
        raise CheckpointError(f"dtype {dtype!r} is not one of auto, {', '.join(_DTYPES)}; pick one of those")
    return _DTYPES[text]


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from bertzoo.discovery import get_registry

    return get_registry()


def head_record_for_architecture(architecture: str, registry: Registry) -> ComponentRecord | None:
    """The registered head whose metadata ``hf_architecture`` equals ``architecture``."""
    found = [r for r in registry.records("head") if r.metadata.get("hf_architecture") == architecture]
    if len(found) > 1:
        logger.info("several heads claim %s (%s); using %s", architecture,
                    ", ".join(r.full_name for r in found), found[0].full_name)
    return found[0] if found else None


def _choose_head(head: str | None, config: Mapping[str, Any], saved: Mapping[str, Any],
                 st_info: SentenceTransformerInfo | None, registry: Registry) -> str | None:
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
    if architecture == TRUNK_ARCHITECTURE:
        return None
    record = head_record_for_architecture(architecture, registry)
    if record is None:
        logger.warning("no registered head declares hf_architecture=%r; head='auto' loads the trunk only",
                       architecture)
        return None
    return record.full_name


def _saved_components(saved: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
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


def from_pretrained(
    path_or_hub_id: str | os.PathLike[str],
    *,
    head: str | None = None,
    attention: str | None = None,
    strict: bool = True,
    allow_pickle: bool = False,
    dtype: Any = None,
    device: Any = None,
    revision: str | None = None,
    registry: Registry | None = None,
    **overrides: Any,
) -> nn.Module:
    """Load a HuggingFace BERT checkpoint (folder, sentence-transformers folder or hub id).

    Args:
        path_or_hub_id: a local folder, or a hub id (cache first; ``HF_HUB_OFFLINE`` honoured).
        head: None = the trunk (``BertModel``); a head name (``"sequence-classification"``); or
            ``"auto"`` = the head that registered ``hf_architecture == config.architectures[0]``.
        attention: an attention name or ``"auto"``; None = what a bertzoo save recorded, else auto.
        strict: raise on missing, mismatched or foreign trunk keys (head keys new by design are
            only reported); False reports everything in ``model.load_report`` instead.
        allow_pickle: read ``pytorch_model.bin`` files (with ``torch.load(weights_only=True)``).
        dtype: None (float32), ``"auto"`` (the checkpoint's dtype), ``"fp32"``/``"bf16"``/a torch dtype.
        device: where to put the model.
        revision: branch, tag or commit for hub ids.
        **overrides: spec fields, components or component options, as in :func:`bertzoo.build`
            (``num_labels=3`` re-initialises the head's ``classifier_keys`` if their shape changes).

    Raises:
        CheckpointError: unreadable or incomplete folder, pickle without opt-in, keys that do not fit.
        SpecError: a config.json or overrides bertzoo cannot express.
    """
    from bertzoo.factory import assemble, resolve_spec

    reg = _registry(registry)
    folder = resolve_model_dir(path_or_hub_id, revision, allow_pickle=allow_pickle)
    st_info = read_sentence_transformers_info(folder)
    model_dir = st_info.transformer_path if st_info is not None else folder
    if not (model_dir / CONFIG_NAME).is_file():
        raise CheckpointError(
            f"{str(model_dir)!r} has no {CONFIG_NAME}; a checkpoint folder needs config.json next to its weights "
            "(save one with save_pretrained, or point at the folder that has it)"
        )
    config = _read_json(model_dir / CONFIG_NAME)
    if not isinstance(config, dict):
        raise CheckpointError(f"{str(model_dir / CONFIG_NAME)!r} must hold a JSON object; re-save the checkpoint")
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        logger.warning("config.json has model_type=%r; loading it as BERT", model_type)
    saved: Mapping[str, Any] = config["bertzoo"] if isinstance(config.get("bertzoo"), Mapping) else {}
    files = weight_files(model_dir, allow_pickle=allow_pickle)
    state = read_state_dict(files)

    head_name = _choose_head(head, config, saved, st_info, reg)
    head_cls = reg.get("head", head_name).load() if head_name is not None else None
    config_options: dict[str, Any] = {}
    if head_cls is not None:
        # A head without config.json hooks (a plugin head) gets back the options a bertzoo save
        # recorded for it. With hooks, config.json is the truth: another tool may have edited it.
        saved_head = (saved.get("components") or {}).get("head")
        saved_name = str(saved_head.get("name") or "") if isinstance(saved_head, Mapping) else ""
        if (
            not hasattr(head_cls, "options_from_hf_config")
            and saved_name
            and isinstance(saved_head, Mapping)
            and isinstance(saved_head.get("options"), Mapping)
            and reg.is_component("head", saved_name)
            and reg.get("head", saved_name).full_name == reg.get("head", head_name).full_name
        ):
            config_options.update(saved_head["options"])
        if hasattr(head_cls, "options_from_hf_config"):
            config_options.update(head_cls.options_from_hf_config(dict(config)))
        if st_info is not None and hasattr(head_cls, "options_from_sentence_transformers"):
            config_options.update(head_cls.options_from_sentence_transformers(st_info))

    components = _saved_components(saved, reg)
    if head_name is not None:
        components["head"] = {"name": head_name, "options": config_options}
    spec = ModelSpec.from_hf_config(config, name=str(path_or_hub_id), components=components)
    if attention is not None:
        overrides = {"attention": attention, **overrides}
    spec = resolve_spec(spec, overrides, reg)
    final_options = dict(spec.components.head.options) if spec.components.head is not None else {}
    changed_head = any(final_options.get(k) != v for k, v in config_options.items()) or any(
        k in final_options for k in overrides)

    torch_dtype = _torch_dtype(dtype, config, state)
    # On the CPU the model is built on the meta device and the file's tensors become its weights:
    # no random init of weights about to be replaced and no second copy (cold start, peak memory).
    on_meta = device is None or torch.device(device).type == "cpu"
    if on_meta:
        with torch.device("meta"), _no_torch_init():
            model = assemble(spec, reg, dtype=torch_dtype, init=False)
    else:
        model = assemble(spec, reg, device=device, dtype=torch_dtype)
    head_model = isinstance(getattr(model, "bert", None), nn.Module)
    report = LoadReport(source=str(model_dir), files=[p.name for p in files])
    state = normalize_keys(state, model.state_dict().keys(), head_model=head_model, report=report)
    load_into(model, state, report=report, reinitialize=_reinit_keys(head_cls) if changed_head else (),
              assign=on_meta)

    problems = report.problems()
    if strict and problems:
        raise CheckpointError(
            f"checkpoint {str(path_or_hub_id)!r} does not fit the model ({len(problems)} problem(s)): "
            f"{_short_list(problems, 20)}. Fix the overrides or config so the architecture matches, or pass "
            "strict=False to load anyway (the listed weights keep their random initial values)"
        )
    if report.clean and not report.expected_new:
        logger.info(report.summary())
    else:
        logger.warning(report.summary())
    model.load_report = report  # type: ignore[assignment]
    if st_info is not None:
        model.sentence_transformers_info = st_info  # type: ignore[assignment]
    model.name_or_path = str(path_or_hub_id)  # type: ignore[assignment]
    model.eval()
    return model


# -- save_pretrained ------------------------------------------------------------------------------
def _spec_of(model: nn.Module) -> ModelSpec:
    for owner in (model, getattr(model, "bert", None)):
        spec = getattr(owner, "spec", None)
        if isinstance(spec, ModelSpec):
            return spec
    raise CheckpointError(
        f"{type(model).__name__} carries no ModelSpec (.spec); save_pretrained saves models built by "
        "bertzoo.build or bertzoo.from_pretrained"
    )


def _head_record_of(model: nn.Module, spec: ModelSpec, registry: Registry) -> ComponentRecord | None:
    if not isinstance(getattr(model, "bert", None), nn.Module):
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


def parse_size(size: int | str) -> int:
    """``"20KB"`` → 20000, ``"5GiB"`` → 5·2³⁰ (transformers' ``convert_file_size_to_int`` units)."""
    if isinstance(size, int):
        return size
    text = size.strip().upper()
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
             "TB": 10**12, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * factor)
            except ValueError:
                break
    raise CheckpointError(f"max_shard_size {size!r} is not a size; write e.g. 500MB, 5GB or 2GiB, or an int of bytes")


def _dtype_name(model: nn.Module) -> str:
    param = next(model.parameters(), None)
    return str(param.dtype).replace("torch.", "") if param is not None else "float32"


def hf_config_for(model: nn.Module, registry: Registry | None = None) -> dict[str, Any]:
    """The ``config.json`` of ``model``: HF keys, architecture, head keys, and bertzoo's component choices."""
    from bertzoo import __version__

    reg = _registry(registry)
    spec = _spec_of(model)
    record = _head_record_of(model, spec, reg)
    config = spec.to_hf_config()
    architecture = TRUNK_ARCHITECTURE
    components = spec.components.model_dump(mode="json")
    if record is None:
        components["head"] = None
    else:
        architecture = str(record.metadata.get("hf_architecture") or type(model).__name__)
        if architecture == SENTENCE_TRANSFORMERS_ARCHITECTURE:  # not a transformers class: the folder is a BertModel's
            architecture = TRUNK_ARCHITECTURE
        head_cls = record.load()
        head_options = dict(spec.components.head.options) if spec.components.head is not None else {}
        if hasattr(head_cls, "hf_config_from_options"):
            config.update(head_cls.hf_config_from_options(head_options))
        components["head"] = {"name": record.full_name, "options": head_options}
    config.update(architectures=[architecture], model_type="bert", dtype=_dtype_name(model))
    # transformers ignores unknown keys; this keeps attention/pooler choices across a bertzoo round trip
    config["bertzoo"] = {"version": __version__, "name": spec.name, "components": components}
    return dict(sorted(config.items()))


def state_dict_for_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors to write: one name per shared tensor (tied aliases omitted), contiguous, on CPU."""
    state = model.state_dict()
    keep = [group[0] for group in alias_groups(model)]
    return {name: state[name].detach().to("cpu").contiguous() for name in keep}


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


def _write_weights(folder: Path, state: dict[str, torch.Tensor], max_shard_size: int | str | None) -> None:
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
    an existing folder as it was. Other files already in the folder (a tokenizer, a README) are
    kept; old weight files are replaced.

    Args:
        max_shard_size: bytes or a size string (``"20KB"``, ``"5GB"``); None = one file.

    Returns:
        The folder written.
    """
    target = Path(save_directory).expanduser()
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"cannot save to {str(target)!r}: it is a file; give a folder path")
    target.parent.mkdir(parents=True, exist_ok=True)
    config = hf_config_for(model, registry)
    state = state_dict_for_save(model)
    tag = uuid.uuid4().hex[:8]
    tmp = target.parent / f".{target.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        _write_weights(tmp, state, max_shard_size)
        extra_files = getattr(model, "save_extra_files", None)  # a head's own files (e.g. modules.json)
        if callable(extra_files):
            extra_files(tmp)
        if target.is_dir():  # keep the tokenizer and other non-weight files already there
            for entry in target.iterdir():
                if _is_weight_file(entry.name) or (tmp / entry.name).exists():
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_into_place(tmp, target, tag)
    logger.info("saved %s to %s", type(model).__name__, target)
    return target


def _swap_into_place(tmp: Path, target: Path, tag: str) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    backup = target.parent / f".{target.name}.old-{tag}"
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(backup, target)  # put the old folder back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)


class PretrainedMixin:
    """``model.save_pretrained(dir)`` for the trunk and the heads (mixed into their classes)."""

    def save_pretrained(self, save_directory: str | os.PathLike[str], *, max_shard_size: int | str | None = None
                        ) -> Path:
        assert isinstance(self, nn.Module)
        return save_pretrained(self, save_directory, max_shard_size=max_shard_size)

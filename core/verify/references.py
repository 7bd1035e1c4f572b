"""The references verify compares with: transformers (eager attention, float32: the reference definition)
and, for a sentence-transformers folder, sentence-transformers; and their tokenizers.

transformers and sentence-transformers are dev extras, imported only here, when verify runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertzoo.errors import BertzooError, CheckpointError
from bertzoo.verify.report import TokenizerCheck


class MissingDependencyError(BertzooError):
    """A package verify needs (transformers, sentence-transformers) is not installed."""



def import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "bertzoo verify compares against HuggingFace transformers, which is not installed; "
            "pip install transformers (or pip install 'bertzoo[dev]')"
        ) from None
    return transformers


def import_sentence_transformers() -> Any:
    try:
        import sentence_transformers
    except ImportError:
        raise MissingDependencyError(
            "this is a sentence-transformers folder (modules.json) and bertzoo verify compares its embeddings "
            "against sentence-transformers, which is not installed; pip install sentence-transformers"
        ) from None
    return sentence_transformers


@contextmanager
def quiet_transformers(transformers: Any) -> Iterator[None]:
    """Silence transformers' load reports while the reference loads (bertzoo reports its own)."""
    hf_logging = transformers.utils.logging
    before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


def reference_class(transformers: Any, config: Mapping[str, Any], st: bool) -> tuple[str, Any]:
    """The transformers class to compare with: the family's trunk for a sentence-transformers
    folder, else ``architectures[0]`` when bertzoo reads it (a registered family's trunk or a
    registered head's ``hf_architecture``)."""
    from bertzoo.discovery import get_registry
    from bertzoo.family import families, get_family

    registry = get_registry()
    if st:
        name = get_family(str(config.get("model_type") or "bert"), registry).trunk_architecture
        return name, getattr(transformers, name)
    readable = {f.trunk_architecture for f in families(registry)}
    readable.update(str(r.metadata["hf_architecture"]) for r in registry.records("head")
                    if r.metadata.get("hf_architecture"))
    architectures = config.get("architectures") or ["BertModel"]
    name = str(architectures[0])
    cls = getattr(transformers, name, None)
    if cls is None or name not in readable:
        raise CheckpointError(
            f"config.json names architecture {name!r}, which bertzoo does not read or transformers "
            f"{transformers.__version__} does not have; bertzoo verify compares the architectures of the "
            "registered families (bertzoo list family)"
        )
    return name, cls


def load_reference(transformers: Any, cls: Any, folder: Path, device: torch.device) -> nn.Module:
    with quiet_transformers(transformers):
        model, info = cls.from_pretrained(
            str(folder), attn_implementation="eager", dtype=torch.float32, output_loading_info=True
        )
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise CheckpointError(
            f"transformers' {cls.__name__} finds no weights for {len(missing)} key(s) in {str(folder)!r} "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}) and would initialise them at "
            "random, so there is nothing to compare them with; verify a checkpoint that holds every weight "
            "of its architecture"
        )
    return model.to(device).eval()



def check_hf_tokenizer(transformers: Any, folder: Path, tokenizer: Any, items: Sequence[Any],
                        notes: list[str]) -> TokenizerCheck | None:
    try:
        with quiet_transformers(transformers):
            hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # no tokenizer files, or one transformers cannot read: ids are still shared
        notes.append(f"transformers could not load a tokenizer from the folder ({type(exc).__name__}); "
                     "token ids not compared")
        return None
    ours = tokenizer.encode_ids(items).ids
    mismatched = []
    for i, item in enumerate(items):
        args = (item,) if isinstance(item, str) else tuple(item)
        ids = hf_tok(*args, truncation=True, max_length=tokenizer.max_length)["input_ids"]
        if list(ids) != list(ours[i]):
            mismatched.append(i)
    return TokenizerCheck("transformers AutoTokenizer", len(items), mismatched)


def check_st_tokenizer(st_model: Any, tokenizer: Any, texts: Sequence[str]) -> TokenizerCheck:
    ours = tokenizer.encode_ids(texts).ids
    preprocess = getattr(st_model, "preprocess", None) or st_model.tokenize  # `tokenize` before ST 6
    features = preprocess(list(texts))
    ids, mask = features["input_ids"], features["attention_mask"].bool()
    mismatched = [i for i in range(len(texts)) if ids[i][mask[i]].tolist() != list(ours[i])]
    return TokenizerCheck("sentence-transformers", len(texts), mismatched)


__all__ = ["MissingDependencyError", "check_hf_tokenizer", "check_st_tokenizer", "import_sentence_transformers",
           "import_transformers", "load_reference", "quiet_transformers", "reference_class"]

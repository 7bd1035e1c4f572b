"""The run: load one checkpoint in bertzoo (once per attention implementation) and in the reference, feed
both the same token ids in two batch layouts, and compare every output on real tokens only.

- the trunk's ``last_hidden_state`` and ``pooler_output`` against transformers' ``BertModel``;
- the head's outputs (``logits``, ``start_logits``, ``prediction_logits``, ...) against the
  transformers class named by ``config.json``'s ``architectures`` (the head bertzoo's
  ``head="auto"`` picks);
- for a sentence-transformers folder (``modules.json``): ``sentence_embedding`` against
  ``SentenceTransformer.encode`` (which tokenizes and batches on its own);
- the token ids themselves against the reference tokenizer (transformers' ``AutoTokenizer``, or
  sentence-transformers' own).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.errors import CheckpointError, IncompatibleComponentError, InputError
from bertzoo.verify.compare import Comparison, compare, is_token_output, tensor_fields
from bertzoo.verify.references import (
    check_hf_tokenizer,
    check_st_tokenizer,
    import_sentence_transformers,
    import_transformers,
    load_reference,
    quiet_transformers,
    reference_class,
)
from bertzoo.verify.report import TokenizerCheck, VerifyReport
from bertzoo.verify.texts import PAIRS, TEXTS, batch_layouts, multiple_choice_inputs
from bertzoo.verify.tolerances import TOLERANCES, Tolerance


@dataclass
class _Batch:
    layout: str
    indices: list[int]  # positions in the list of inputs
    inputs: dict[str, Tensor]  # input_ids / attention_mask / token_type_ids, (B, S) or (B, C, S)
    token_mask: Tensor  # (B, S) real tokens of the trunk view (flattened choices for multiple choice)


def _trunk(model: nn.Module) -> nn.Module:
    bert = getattr(model, "bert", None)
    return bert if isinstance(bert, nn.Module) else model


def _hf_trunk(model: nn.Module) -> nn.Module:
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


@torch.inference_mode()
def _run(model: nn.Module, trunk: nn.Module, batches: Sequence[_Batch], device: torch.device,
         with_head: bool) -> list[dict[str, Tensor]]:
    """Per batch: the trunk's outputs, plus the head's (when ``with_head``), all on the CPU.

    The trunk's outputs are caught by a forward hook during the head's call, so each batch runs once.
    """
    captured: list[Any] = []
    hook = trunk.register_forward_hook(lambda _module, _args, output: captured.append(output))
    results = []
    try:
        for batch in batches:
            inputs = {k: v.to(device) for k, v in batch.inputs.items()}
            captured.clear()
            head_out = model(**inputs, return_dict=True)
            trunk_out = captured[-1] if captured else head_out
            if not hasattr(trunk_out, "last_hidden_state"):  # a head that called its trunk for a tuple
                flat = {k: v.reshape(-1, v.shape[-1]) for k, v in inputs.items()}  # multiple choice: (B*C, S)
                trunk_out = trunk(**flat, return_dict=True)
            out: dict[str, Tensor] = {"last_hidden_state": trunk_out.last_hidden_state}
            if getattr(trunk_out, "pooler_output", None) is not None:
                out["pooler_output"] = trunk_out.pooler_output
            if with_head and head_out is not trunk_out:
                for name, value in tensor_fields(head_out).items():
                    out.setdefault(name, value)
            results.append({k: v.float().cpu() for k, v in out.items()})
    finally:
        hook.remove()
    return results


def _attention_names(requested: Sequence[str] | None, registry: Any) -> list[str]:
    records = registry.records("attention")
    if not requested:
        return [r.full_name for r in records if r.namespace == "bertzoo"]
    if list(requested) == ["all"]:
        return [r.full_name for r in records]
    return [registry.get("attention", name).full_name for name in requested]


def verify(
    model: str | os.PathLike[str],
    *,
    attentions: Sequence[str] | None = None,
    models: Mapping[str, nn.Module] | None = None,
    texts: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    device: str | torch.device | None = None,
    dtype: str = "float32",
    batch_size: int = 4,
    tolerance: Tolerance | None = None,
    revision: str | None = None,
    registry: Any = None,
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Compare a checkpoint in bertzoo with transformers (and sentence-transformers) on varied texts.

    Args:
        model: a checkpoint folder (HF or sentence-transformers) or a hub id (cache first).
        attentions: bertzoo attention names to compare (default: bertzoo's built-in ones able to
            serve the model; ``["all"]``: every registered one).
        models: instead of loading the folder in bertzoo, compare these models (label → model),
            e.g. a model you modified in memory. They must take the folder's inputs.
        texts: single texts (default :data:`TEXTS`).
        pairs: text pairs, used when the checkpoint is not a sentence-transformers folder
            (default :data:`PAIRS`).
        device: where both sides run (default cpu).
        dtype: bertzoo's dtype, ``float32``, ``bfloat16`` or ``float16``; the reference runs in float32.
        batch_size: size of the length-sorted batches.
        tolerance: thresholds (default ``TOLERANCES[dtype]``).
        revision: branch, tag or commit for hub ids.
        registry: the registry to build from (default: the installed plugins).
        progress: called with a short line as each stage starts (the CLI prints them on stderr).

    Raises:
        CheckpointError: the folder does not exist or cannot be loaded, or lacks weights of its architecture.
        MissingDependencyError: transformers (or, for a sentence-transformers folder,
            sentence-transformers) is not installed.
        InputError: an unknown dtype or empty inputs.
    """
    from bertzoo.checkpoint.hub import resolve_model_dir
    from bertzoo.checkpoint.sentence_transformers import read_sentence_transformers_info
    from bertzoo.discovery import get_registry
    from bertzoo.inference.tokenizer import Tokenizer

    started = time.perf_counter()
    say = progress or (lambda line: None)
    dtype_name = _judged_dtype(dtype)
    tolerance = tolerance or TOLERANCES[dtype_name]
    torch_device = torch.device(device or "cpu")
    registry = registry or get_registry()

    folder = resolve_model_dir(model, revision)
    transformers = import_transformers()
    st_info = read_sentence_transformers_info(folder)
    is_st = st_info is not None
    st_module = import_sentence_transformers() if is_st else None
    model_dir = st_info.transformer_path if st_info is not None else folder
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{str(model_dir)!r} has no config.json; point verify at a checkpoint folder")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    ref_name, ref_cls = reference_class(transformers, config, is_st)

    # -- inputs: the same token ids go into both models --------------------------------------------------
    texts = list(TEXTS if texts is None else texts)
    pairs = [] if is_st else list(PAIRS if pairs is None else pairs)
    if not texts and not pairs:
        raise InputError("verify needs at least one text or pair to compare")
    tokenizer = Tokenizer.from_folder(model_dir if (model_dir / "tokenizer.json").is_file()
                                      or (model_dir / "vocab.txt").is_file() else folder)
    items: list[Any] = [*texts, *pairs]

    say(f"loading {model} in bertzoo")
    skipped: dict[str, str] = {}
    if models is not None:
        loaded = dict(models)
    else:
        loaded = _load_ours(folder, _attention_names(attentions, registry),
                            torch_device, dtype_name, registry, skipped)
    head = _head_name(next(iter(loaded.values()), None))
    multiple_choice = head == "multiple-choice" or ref_name == "BertForMultipleChoice"
    batches, layout_text = _batches(tokenizer, texts, pairs, multiple_choice, batch_size)

    # -- references -----------------------------------------------------------------------------------
    say(f"loading the reference {ref_name} in transformers {transformers.__version__}")
    reference = load_reference(transformers, ref_cls, model_dir, torch_device)
    versions = {"transformers": str(transformers.__version__), "torch": str(torch.__version__)}
    ref_outputs = _run(reference, _hf_trunk(reference), batches, torch_device, with_head=not is_st)
    st_embeddings: Tensor | None = None
    notes: list[str] = []
    tokenizer_check: TokenizerCheck | None = None
    if st_module is not None:
        versions["sentence-transformers"] = str(st_module.__version__)
        say("encoding with sentence-transformers")
        with quiet_transformers(transformers):
            st_model = st_module.SentenceTransformer(str(folder), device=str(torch_device))
        # verify compares the model on the same texts; a folder's default prompt is a text-level step
        # (the main job applies it, tests/compat check it), so sentence-transformers must not add it here
        st_embeddings = st_model.encode(texts, batch_size=batch_size, convert_to_tensor=True, prompt="").float().cpu()
        if getattr(st_model, "default_prompt_name", None):
            notes.append(f"the folder's default prompt {st_model.default_prompt_name!r} is not applied here: both "
                         "sides embed the texts as given (the main job applies it, as sentence-transformers does)")
        tokenizer_check = check_st_tokenizer(st_model, tokenizer, texts)
    else:
        tokenizer_check = check_hf_tokenizer(transformers, model_dir, tokenizer, items, notes)

    # -- compare ------------------------------------------------------------------------------------------
    comparisons: list[Comparison] = []
    for label, ours_model in loaded.items():
        say(f"running bertzoo with {label}")
        ours = _run(ours_model, _trunk(ours_model), batches, torch_device, with_head=True)
        comparisons += _compare_outputs(label, ours, ref_outputs, batches, head, tolerance, notes)
        if st_embeddings is not None:
            if "sentence_embedding" not in ours[0]:
                notes.append(f"{label}: no sentence_embedding output; sentence-transformers not compared")
                continue
            per_text = [st_embeddings[b.indices] for b in batches]
            comparisons.append(compare(
                label, "sentence_embedding", [o["sentence_embedding"] for o in ours], per_text,
                reference_name="sentence-transformers", tolerance=tolerance,
            ))

    return VerifyReport(
        model=os.fspath(model), folder=str(folder), kind="sentence-transformers" if is_st else "transformers",
        head=head, reference_class=ref_name, versions=versions, device=str(torch_device), dtype=dtype_name,
        max_length=tokenizer.max_length, max_length_source=tokenizer.max_length_resolution.source,
        inputs={"texts": len(texts), "pairs": len(pairs)}, layouts=layout_text, tolerance=tolerance,
        tokenizer=tokenizer_check, comparisons=comparisons, skipped=skipped, notes=notes,
        seconds=time.perf_counter() - started,
    )


def _judged_dtype(dtype: Any) -> str:
    """The canonical name of ``dtype``, if verify has a tolerance for it.

    Raises:
        InputError: a dtype verify cannot judge.
    """
    from bertzoo.dtypes import dtype_name

    try:
        name = dtype_name(dtype)
    except InputError:
        name = str(dtype)
    if name not in TOLERANCES:
        raise InputError(f"dtype {dtype!r} is not one verify can judge; use one of {', '.join(TOLERANCES)}")
    return name


def _load_ours(folder: Any, attentions: Sequence[str], device: torch.device,
               dtype: str, registry: Any, skipped: dict[str, str]) -> dict[str, nn.Module]:
    """The checkpoint in bertzoo once per attention; one that cannot serve it goes to ``skipped`` with why.

    Raises:
        CheckpointError: the folder lacks weights of the model bertzoo builds (they would be random).
    """
    from bertzoo.dtypes import torch_dtype
    from bertzoo.pretrained import from_pretrained

    loaded: dict[str, nn.Module] = {}
    for name in attentions:
        try:
            loaded[name] = from_pretrained(folder, head="auto", attention=name, device=device,
                                           dtype=torch_dtype(dtype), registry=registry)
        except IncompatibleComponentError as exc:
            skipped[name] = str(exc)
            continue
        report = getattr(loaded[name], "load_report", None)
        fresh = list(getattr(report, "newly_initialized", []) or [])
        if fresh:
            raise CheckpointError(
                f"{str(folder)!r} lacks {len(fresh)} weight(s) of the model bertzoo builds from it "
                f"({', '.join(fresh[:5])}{', ...' if len(fresh) > 5 else ''}), which would be random on "
                "both sides; verify a checkpoint that holds every weight of its architecture"
            )
    return loaded


def _batches(tokenizer: Any, texts: Sequence[str], pairs: Sequence[tuple[str, str]], multiple_choice: bool,
             batch_size: int) -> tuple[list[_Batch], dict[str, str]]:
    """The inputs in both layouts as model-ready batches, and a one-line description of each layout."""
    items: list[Any] = [*texts, *pairs]
    # a multiple-choice head reads (B, C, S): each input becomes C = 2 (question, answer) pairs
    flat_items = [p for c in multiple_choice_inputs(texts, pairs) for p in c] if multiple_choice else items
    encoded = tokenizer.encode_ids(flat_items)
    n_choices = 2 if multiple_choice else 1
    lengths = [max(encoded.lengths[i * n_choices:(i + 1) * n_choices]) for i in range(len(encoded) // n_choices)]
    batches: list[_Batch] = []
    layout_text: dict[str, str] = {}
    for layout, groups in batch_layouts(lengths, batch_size).items():
        for group in groups:
            rows = [i * n_choices + c for i in group for c in range(n_choices)]
            enc = tokenizer.encode_batch([flat_items[r] for r in rows])
            inputs = enc.model_inputs()
            if multiple_choice:
                inputs = {k: v.view(len(group), n_choices, -1) for k, v in inputs.items()}
            batches.append(_Batch(layout, group, inputs, enc.attention_mask))
        widest = max(int(b.token_mask.shape[-1]) for b in batches if b.layout == layout)
        layout_text[layout] = (f"1 batch of {len(groups[0])}, padded to {widest} tokens" if len(groups) == 1
                               else f"{len(groups)} length-sorted batches of up to {batch_size}")
    return batches, layout_text


def _compare_outputs(label: str, ours: list[dict[str, Tensor]], reference: list[dict[str, Tensor]],
                     batches: Sequence[_Batch], head: str | None, tolerance: Tolerance,
                     notes: list[str]) -> list[Comparison]:
    """One comparison per output both sides give; outputs only the reference gives go to ``notes``."""
    names = [n for n in reference[0] if n in ours[0]]
    missing = [n for n in reference[0] if n not in ours[0]]
    if missing:
        notes.append(f"{label}: bertzoo gives no {', '.join(missing)} (transformers does); not compared")
    masks = [b.token_mask for b in batches]
    return [
        compare(label, name, [o[name] for o in ours], [r[name] for r in reference],
                token_masks=masks if is_token_output(name, head) else None, tolerance=tolerance)
        for name in names
    ]


def _head_name(model: nn.Module | None) -> str | None:
    if model is None:
        return None
    spec = getattr(model, "spec", None) or getattr(_trunk(model), "spec", None)
    head = getattr(getattr(spec, "components", None), "head", None)
    # the family-independent name (``roberta.masked-lm`` → ``masked-lm``): what decides how outputs compare
    return None if head is None else str(head.name).split(":")[-1].split(".")[-1]


__all__ = ["verify"]

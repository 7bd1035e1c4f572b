"""The ``embed`` task: sentence vectors through the head's embed contract.

A prompt (``prompt=``, ``prompt_name=``, or the folder's ``default_prompt_name``) is prepended to
each text, and kept out of pooling when the folder's Pooling says ``include_prompt: false``
(:mod:`bertzoo.inference.prompts`). A text longer than the maximum length is then cut or split into
windows by the truncation policy (:mod:`bertzoo.inference.truncation`); windows of one text are
averaged, weighted by their token counts (for mean pooling this is the mean over all the windows'
tokens), then L2-normalised when the head says so (or ``normalize=True``). ``truncate_dim`` keeps the
first dimensions and ``precision`` quantizes the result, both as sentence-transformers' ``encode``
does (:func:`bertzoo.util.quantize_embeddings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bertzoo.errors import InputError
from bertzoo.inference.batching import as_text_list, check_strings
from bertzoo.inference.engine import Engine
from bertzoo.inference.truncation import TruncationTally, check_policy, too_long_error
from bertzoo.inference.vectors import check_finite

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.inference.tokenizer import FittedIds


def dimension(engine: Engine) -> int:
    """Width of the vectors the head's embed contract returns."""
    return int(engine.head.embedding_dimension)


def default_normalize(engine: Engine) -> bool:
    """Whether the head's vectors are L2-normalised by default (sentence-transformers' Normalize)."""
    return bool(engine.head.embedding_normalize)


def embed_prompt(engine: Engine, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
    """The prompt a call applies: ``prompt``, else the folder's ``prompts[prompt_name]``, else its
    default prompt (see :func:`bertzoo.inference.prompts.resolve_prompt`).

    Raises:
        InputError: an unknown ``prompt_name``.
    """
    from bertzoo.inference import prompts as _prompts

    settings = _prompts.prompt_settings(engine.folder)
    return _prompts.resolve_prompt(settings.prompts, settings.default_prompt_name, prompt, prompt_name,
                                   model=repr(str(engine.folder)))


def encode_for_embedding(engine: Engine, texts: Sequence[str], truncate: str = "warn", *, first_index: int = 0,
                         prompt: str | None = None, prompt_name: str | None = None) -> FittedIds:
    """Prepend the prompt (see :func:`embed_prompt`; the folder's default prompt when none is named),
    tokenize whole texts and apply the truncation policy.

    Returns a :class:`~bertzoo.inference.prompts.PromptedIds` that tells :func:`embed_encoded` how
    many prompt tokens to keep out of pooling (non-zero only when the folder's Pooling has
    ``include_prompt: false``).

    Raises:
        InputError: ``truncate="error"`` and a text is longer than the maximum length, a bad policy,
            or an unknown ``prompt_name``.
    """
    from bertzoo.inference import prompts as _prompts

    check_policy(truncate)
    text = embed_prompt(engine, prompt, prompt_name)
    include = _prompts.prompt_settings(engine.folder).include_prompt
    skip = 0 if include else _prompts.prompt_length(engine.tokenizer, text)
    plain = engine.tokenizer.encode_fitted(_prompts.apply_prompt(list(texts), text), windows=truncate == "chunk")
    fitted = _prompts.PromptedIds(plain.sequences, plain.tokens, plain.truncated, plain.owner, prompt_tokens=skip)
    long = np.flatnonzero(fitted.tokens > engine.max_length)
    if truncate == "error" and len(long):
        i = int(long[0])
        raise too_long_error(first_index + i, int(fitted.tokens[i]), engine.max_length, str(engine.folder))
    tally = TruncationTally(truncate, engine.max_length)
    tally.add(len(long), len(texts))
    tally.warn(stacklevel=5)
    return fitted


def embed_encoded(
    engine: Engine,
    fitted: FittedIds,
    *,
    batch_tokens: int | None = None,
    normalize: bool | None = None,
    progress: bool | None = None,
    threads: int | None = None,
    truncate_dim: int | None = None,
) -> Tensor:
    """Vectors of texts encoded by :func:`encode_for_embedding`: ``(N, D)`` float32 on the device.

    ``truncate_dim`` keeps the first dimensions, as sentence-transformers does: with
    ``normalize=None`` the model's vectors (normalised if it says so) are cut, so they are no longer
    unit length; ``normalize=True`` normalises after the cut; ``normalize=False`` cuts the raw vectors.
    """
    if truncate_dim is None:
        return _embed_fitted(engine, fitted, batch_tokens, normalize, progress, threads)
    import torch.nn.functional as F

    check_truncate_dim(truncate_dim)
    before = default_normalize(engine) if normalize is None else False
    out = _embed_fitted(engine, fitted, batch_tokens, before, progress, threads)[:, :truncate_dim]
    return F.normalize(out, p=2, dim=-1) if normalize else out


def check_truncate_dim(truncate_dim: int | None) -> None:
    """Raises InputError unless ``truncate_dim`` is None or a positive integer."""
    if truncate_dim is not None and (isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int | np.integer)
                                     or truncate_dim < 1):
        raise InputError(f"truncate_dim={truncate_dim!r} must be a positive integer (the dimensions to keep) or None")


def _embed_fitted(engine: Engine, fitted: FittedIds, batch_tokens: int | None, normalize: bool | None,
                  progress: bool | None, threads: int | None) -> Tensor:
    import torch
    import torch.nn.functional as F

    from bertzoo.inference import prompts as _prompts

    engine.require("embed")
    embed_states = engine.contract("embed_states")
    if normalize is None:
        normalize = default_normalize(engine)
    width = dimension(engine)
    seqs, windowed = fitted.sequences, fitted.owner is not None
    skips = _prompts.sequence_skips(fitted, getattr(fitted, "prompt_tokens", 0))
    skip_all = torch.as_tensor(skips, device=engine.device) if skips is not None else None
    out = torch.empty((len(seqs), width), dtype=torch.float32, device=engine.device)
    if len(seqs):
        with engine.running(threads):
            for batch in engine.batches(seqs, batch_tokens, progress):
                states = engine.states(batch)
                if skip_all is not None:  # the prompt's tokens stay out of pooling (include_prompt: false)
                    states = _prompts.exclude_leading(states, skip_all[batch.index])
                vectors = engine.expect_shape(embed_states(states), (len(batch.index), width), "vectors").float()
                if normalize and not windowed:
                    vectors = F.normalize(vectors, p=2, dim=-1)
                out[batch.index] = vectors
    if fitted.owner is None:
        return out
    owner = torch.as_tensor(fitted.owner, device=engine.device)  # (M,)
    pooled = seqs.lengths if skips is None else np.maximum(seqs.lengths - skips, 1)  # tokens each window pooled
    weight = torch.as_tensor(pooled, dtype=torch.float32, device=engine.device)  # (M,)
    total = out.new_zeros((len(fitted), width)).index_add_(0, owner, out * weight[:, None])
    count = out.new_zeros(len(fitted)).index_add_(0, owner, weight)  # (N,)
    merged = total / count[:, None]
    return F.normalize(merged, p=2, dim=-1) if normalize else merged


def embed(
    engine: Engine,
    texts: str | Iterable[str],
    *,
    batch_tokens: int | None = None,
    normalize: bool | None = None,
    progress: bool | None = None,
    threads: int | None = None,
    output: Literal["numpy", "torch"] = "numpy",
    truncate: str = "warn",
    prompt: str | None = None,
    prompt_name: str | None = None,
    precision: str = "float32",
    truncate_dim: int | None = None,
) -> Any:
    """Sentence vectors, in input order: ``(N, D)`` float32; ``(D,)`` for a single string.

    Args:
        prompt / prompt_name: see :func:`encode_for_embedding` (the folder's default prompt otherwise).
        precision: ``"float32"``, or ``"int8"`` / ``"uint8"`` / ``"binary"`` / ``"ubinary"``:
            sentence-transformers' output quantization (int8 ranges come from this call's vectors;
            binary packs 8 dimensions per byte), see :func:`bertzoo.util.quantize_embeddings`.
        truncate_dim: keep the first dimensions (see :func:`embed_encoded`).

    Raises:
        InputError: a bad option, an unknown ``prompt_name``, or int8 asked of a single text.
        NonFiniteVectorError: a vector holding NaN or Inf (a corrupted model), naming the text.
    """
    import torch

    from bertzoo.util import OUTPUT_PRECISIONS, quantize_embeddings

    engine.require("embed")
    items, single = as_text_list(texts, "embed")
    items = check_strings(items, "embed")
    if output not in ("numpy", "torch"):
        raise InputError(f"output={output!r} is unknown; use 'numpy' or 'torch'")
    if precision not in OUTPUT_PRECISIONS:
        raise InputError(f"precision={precision!r} is unknown; use one of {', '.join(OUTPUT_PRECISIONS)}")
    check_policy(truncate)
    check_truncate_dim(truncate_dim)
    if items:
        fitted = encode_for_embedding(engine, items, truncate, prompt=prompt, prompt_name=prompt_name)
        out = embed_encoded(engine, fitted, batch_tokens=batch_tokens, normalize=normalize, progress=progress,
                            threads=threads, truncate_dim=truncate_dim)
        check_finite(out)  # a corrupted model must not hand back NaN or Inf vectors
    else:
        embed_prompt(engine, prompt, prompt_name)  # an unknown prompt name is an error even with no text
        width = dimension(engine) if truncate_dim is None else min(dimension(engine), int(truncate_dim))
        out = torch.empty((0, width), dtype=torch.float32, device=engine.device)
    if precision != "float32" and len(out):
        quantized = quantize_embeddings(out.cpu().numpy(), precision)  # ranges from the whole call, as ST
        result_np = quantized[0] if single else quantized
        return torch.from_numpy(result_np).to(engine.device) if output == "torch" else result_np
    result = out[0] if single else out
    return result if output == "torch" else result.cpu().numpy()


__all__ = ["check_truncate_dim", "default_normalize", "dimension", "embed", "embed_encoded",
           "embed_prompt", "encode_for_embedding"]

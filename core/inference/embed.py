"""The ``embed`` task: sentence vectors through the head's embed contract.

A text longer than the maximum length is cut or split into windows by the truncation policy
(:mod:`bertzoo.inference.truncation`); windows of one text are averaged, weighted by their token
counts (for mean pooling this is the mean over all the windows' tokens), then L2-normalised when
the head says so (or ``normalize=True``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

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


def encode_for_embedding(engine: Engine, texts: Sequence[str], truncate: str = "warn", *, first_index: int = 0,
                         ) -> FittedIds:
    """Tokenize whole texts and apply the truncation policy.

    Raises:
        InputError: ``truncate="error"`` and a text is longer than the maximum length, or a bad policy.
    """
    check_policy(truncate)
    fitted = engine.tokenizer.encode_fitted(texts, windows=truncate == "chunk")
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
) -> Tensor:
    """Vectors of texts encoded by :func:`encode_for_embedding`: ``(N, D)`` float32 on the device."""
    import torch
    import torch.nn.functional as F

    engine.require("embed")
    embed_states = engine.contract("embed_states")
    if normalize is None:
        normalize = default_normalize(engine)
    width = dimension(engine)
    seqs, windowed = fitted.sequences, fitted.owner is not None
    out = torch.empty((len(seqs), width), dtype=torch.float32, device=engine.device)
    if len(seqs):
        with engine.running(threads):
            for batch in engine.batches(seqs, batch_tokens, progress):
                states = engine.states(batch)
                vectors = engine.expect_shape(embed_states(states), (len(batch.index), width), "vectors").float()
                if normalize and not windowed:
                    vectors = F.normalize(vectors, p=2, dim=-1)
                out[batch.index] = vectors
    if fitted.owner is None:
        return out
    owner = torch.as_tensor(fitted.owner, device=engine.device)  # (M,)
    weight = torch.as_tensor(seqs.lengths, dtype=torch.float32, device=engine.device)  # (M,)
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
) -> Any:
    """Sentence vectors, in input order: ``(N, D)`` float32; ``(D,)`` for a single string.

    Raises:
        NonFiniteVectorError: a vector holding NaN or Inf (a corrupted model), naming the text.
    """
    import torch

    engine.require("embed")
    items, single = as_text_list(texts, "embed")
    items = check_strings(items, "embed")
    if output not in ("numpy", "torch"):
        from bertzoo.errors import InputError

        raise InputError(f"output={output!r} is unknown; use 'numpy' or 'torch'")
    check_policy(truncate)
    if items:
        out = embed_encoded(engine, encode_for_embedding(engine, items, truncate), batch_tokens=batch_tokens,
                            normalize=normalize, progress=progress, threads=threads)
        check_finite(out)  # a corrupted model must not hand back NaN or Inf vectors
    else:
        out = torch.empty((0, dimension(engine)), dtype=torch.float32, device=engine.device)
    result = out[0] if single else out
    return result if output == "torch" else result.cpu().numpy()


__all__ = ["default_normalize", "dimension", "embed", "embed_encoded", "encode_for_embedding"]

"""sentence-transformers' ``util`` names over bertzoo vectors: similarity, search, output quantization.

``bertzoo.util.cos_sim``, ``dot_score``, ``euclidean_sim``, ``manhattan_sim`` (and their
``pairwise_`` forms), ``semantic_search`` and ``quantize_embeddings`` take numpy arrays, torch
tensors or lists of either, and compute what sentence-transformers' functions of the same names
compute (same arithmetic, same signs: the distances come back negated, so larger is always
closer). Results are float32 torch tensors, as there.

Shape legend: ``N`` / ``M`` vectors on each side, ``D`` their width.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from bertzoo.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

# the output precisions of sentence-transformers' encode(precision=...) / quantize_embeddings
OUTPUT_PRECISIONS: tuple[str, ...] = ("float32", "int8", "uint8", "binary", "ubinary")
SIMILARITY_FUNCTIONS: tuple[str, ...] = ("cosine", "dot", "euclidean", "manhattan")


def _tensor(a: Any) -> Tensor:
    """``a`` as a tensor (lists of vectors stacked), sub-float32 floats and integers as float32."""
    import torch

    if isinstance(a, list | tuple):
        if a and all(isinstance(x, torch.Tensor) for x in a):
            a = torch.stack(list(a))
        elif a and all(isinstance(x, np.ndarray) for x in a):
            a = torch.from_numpy(np.stack(a))
        else:
            a = torch.tensor(a)
    elif isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    elif not isinstance(a, torch.Tensor):
        raise InputError(f"expected vectors as a numpy array, a torch tensor or a list of them, got {type(a).__name__}")
    if not a.is_floating_point() or a.dtype in (torch.float16, torch.bfloat16):
        a = a.float()
    return a


def _batch(a: Any) -> Tensor:
    """``a`` as a ``(N, D)`` tensor (one vector becomes a batch of one)."""
    t = _tensor(a)
    return t.unsqueeze(0) if t.dim() == 1 else t


def normalize_embeddings(embeddings: Tensor) -> Tensor:
    """Each vector scaled to unit L2 length (zero vectors stay zero)."""
    import torch.nn.functional as F

    return F.normalize(embeddings, p=2, dim=-1)


def cos_sim(a: Any, b: Any) -> Tensor:
    """``(N, M)`` cosine similarities of every ``a[i]`` with every ``b[j]``."""
    return normalize_embeddings(_batch(a)) @ normalize_embeddings(_batch(b)).T


def dot_score(a: Any, b: Any) -> Tensor:
    """``(N, M)`` dot products of every ``a[i]`` with every ``b[j]``."""
    return _batch(a) @ _batch(b).T


def euclidean_sim(a: Any, b: Any) -> Tensor:
    """``(N, M)`` negated Euclidean distances (larger is closer)."""
    import torch

    return -torch.cdist(_batch(a), _batch(b), p=2.0)


def manhattan_sim(a: Any, b: Any) -> Tensor:
    """``(N, M)`` negated Manhattan (L1) distances (larger is closer)."""
    import torch

    return -torch.cdist(_batch(a), _batch(b), p=1.0)


def pairwise_cos_sim(a: Any, b: Any) -> Tensor:
    """``(N,)`` cosine similarity of ``a[i]`` with ``b[i]``."""
    return (normalize_embeddings(_tensor(a)) * normalize_embeddings(_tensor(b))).sum(dim=-1)


def pairwise_dot_score(a: Any, b: Any) -> Tensor:
    """``(N,)`` dot product of ``a[i]`` with ``b[i]``."""
    return (_tensor(a) * _tensor(b)).sum(dim=-1)


def pairwise_euclidean_sim(a: Any, b: Any) -> Tensor:
    """``(N,)`` negated Euclidean distance of ``a[i]`` to ``b[i]``."""
    import torch

    return -torch.linalg.vector_norm(_tensor(a) - _tensor(b), dim=-1)


def pairwise_manhattan_sim(a: Any, b: Any) -> Tensor:
    """``(N,)`` negated Manhattan distance of ``a[i]`` to ``b[i]``."""
    return -(_tensor(a) - _tensor(b)).abs().sum(dim=-1)


_MATRIX: dict[str, Callable[[Any, Any], Tensor]] = {
    "cosine": cos_sim, "dot": dot_score, "euclidean": euclidean_sim, "manhattan": manhattan_sim}
_PAIRWISE: dict[str, Callable[[Any, Any], Tensor]] = {
    "cosine": pairwise_cos_sim, "dot": pairwise_dot_score, "euclidean": pairwise_euclidean_sim,
    "manhattan": pairwise_manhattan_sim}


def similarity_function(name: str, *, pairwise: bool = False) -> Callable[[Any, Any], Tensor]:
    """The function sentence-transformers' ``similarity_fn_name`` ``name`` stands for
    (``dot_product`` is accepted for ``dot``).

    Raises:
        InputError: an unknown name.
    """
    key = "dot" if name == "dot_product" else name
    if key not in _MATRIX:
        raise InputError(f"similarity function {name!r} is unknown; use one of {', '.join(SIMILARITY_FUNCTIONS)}")
    return (_PAIRWISE if pairwise else _MATRIX)[key]


def semantic_search(
    query_embeddings: Any,
    corpus_embeddings: Any,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    top_k: int = 10,
    score_function: Callable[[Any, Any], Tensor] = cos_sim,
) -> list[list[dict[str, Any]]]:
    """The ``top_k`` best corpus entries for each query: one list per query of
    ``{"corpus_id": int, "score": float}``, best first (sentence-transformers' ``util.semantic_search``:
    the same chunking, the same top-k merge, so the same order on ties).

    Args:
        query_embeddings: ``(N, D)`` or one ``(D,)`` vector (numpy, torch, or a list of vectors).
        corpus_embeddings: ``(M, D)``.
        query_chunk_size / corpus_chunk_size: queries and corpus rows scored at once (memory bound).
        score_function: ``(a, b) -> (N, M)`` scores, larger is better (:func:`cos_sim`, :func:`dot_score`, ...).

    Raises:
        InputError: a non-positive ``top_k`` or chunk size, or vectors of different widths.
    """
    import torch

    for name, value in (("top_k", top_k), ("query_chunk_size", query_chunk_size),
                        ("corpus_chunk_size", corpus_chunk_size)):
        if int(value) < 1:
            raise InputError(f"semantic_search: {name}={value} must be at least 1")
    queries = _batch(query_embeddings)
    corpus = _batch(corpus_embeddings)
    if queries.shape[-1] != corpus.shape[-1]:
        raise InputError(f"semantic_search: queries are {queries.shape[-1]}-dim but the corpus is "
                         f"{corpus.shape[-1]}-dim; embed both with the same model and truncate_dim")
    queries = queries.to(corpus.device)
    results: list[list[tuple[float, int]]] = [[] for _ in range(len(queries))]
    cosine = score_function is cos_sim  # normalise each corpus chunk once, as sentence-transformers does
    for c_start in range(0, len(corpus), corpus_chunk_size):
        chunk = corpus[c_start:c_start + corpus_chunk_size]
        if cosine:
            chunk = normalize_embeddings(chunk)
        for q_start in range(0, len(queries), query_chunk_size):
            q_chunk = queries[q_start:q_start + query_chunk_size]
            scores = normalize_embeddings(q_chunk) @ chunk.T if cosine else score_function(q_chunk, chunk)
            values, idx = torch.topk(scores, min(top_k, scores.shape[1]), dim=1, largest=True, sorted=False)
            for heap, ids, vals in zip(results[q_start:q_start + len(q_chunk)], (idx + c_start).cpu().tolist(),
                                       values.cpu().tolist(), strict=True):
                candidates = zip(vals, ids, strict=True)
                for candidate in islice(candidates, top_k - len(heap)):  # fill to top_k, then keep the best
                    heapq.heappush(heap, candidate)
                for candidate in candidates:
                    heapq.heappushpop(heap, candidate)
    return [[{"corpus_id": cid, "score": score} for score, cid in sorted(heap, key=itemgetter(0), reverse=True)]
            for heap in results]


def quantize_embeddings(embeddings: Any, precision: str, ranges: np.ndarray | None = None,
                        calibration_embeddings: np.ndarray | None = None) -> np.ndarray:
    """Float vectors → ``precision`` (sentence-transformers' ``quantize_embeddings``, same arithmetic).

    - ``float32``: unchanged (as float32);
    - ``int8`` / ``uint8``: per dimension, 256 buckets between the minimum and maximum of
      ``ranges`` (``(2, D)``), else of ``calibration_embeddings``, else of ``embeddings`` themselves
      (so the result depends on the batch; pass ``ranges`` to make it stable);
    - ``binary`` / ``ubinary``: the sign bits (``> 0``) packed 8 per byte, ``(N, ceil(D / 8))``;
      ``binary`` is shifted by -128 into int8.

    Raises:
        InputError: an unknown precision, integer input, or int8 ranges asked of one vector alone.
    """
    if precision not in OUTPUT_PRECISIONS:
        raise InputError(f"precision={precision!r} is unknown; use one of {', '.join(OUTPUT_PRECISIONS)}")
    if not isinstance(embeddings, np.ndarray):
        embeddings = _tensor(embeddings).detach().cpu().numpy()
    if embeddings.dtype.kind in "iub":
        raise InputError(f"quantize_embeddings takes float vectors, got {embeddings.dtype}; quantize once, "
                         "from the float32 vectors")
    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            calibration = embeddings if calibration_embeddings is None else calibration_embeddings
            if calibration_embeddings is None and (calibration.ndim == 1 or calibration.shape[0] == 1):
                raise InputError(
                    f"precision={precision!r} calibrates each dimension's range on the vectors of the call, and "
                    "one vector has no range; embed several texts at once, or quantize with "
                    "bertzoo.util.quantize_embeddings(vectors, precision, ranges=...)"
                )
            ranges = np.vstack((np.min(calibration, axis=0), np.max(calibration, axis=0)))
        ranges = ranges.astype(np.float32, copy=False)
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    bits = np.packbits(embeddings > 0, axis=-1)
    return (bits - 128).astype(np.int8) if precision == "binary" else bits


__all__ = [
    "OUTPUT_PRECISIONS", "SIMILARITY_FUNCTIONS", "cos_sim", "dot_score", "euclidean_sim", "manhattan_sim",
    "normalize_embeddings", "pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim",
    "pairwise_manhattan_sim", "quantize_embeddings", "semantic_search", "similarity_function",
]

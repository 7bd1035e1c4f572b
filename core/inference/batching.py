"""Batching for the main job: length-sorted batches under a token budget, input checks, progress, threads.

Shape legend: N texts, B batch, S longest in batch, T real tokens in batch.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bertzoo.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

# Real tokens per batch. Measured on the 2-core CPU (benchmarks/embed.py): throughput is flat
# from ~2k to ~8k tokens and drops beyond (activations leave the L2 cache); memory stays small.
DEFAULT_BATCH_TOKENS = 4096
# a job this large (real tokens) gets a progress bar when stderr is a terminal
PROGRESS_MIN_TOKENS = 50_000


def plan_batches(lengths: np.ndarray, batch_tokens: int, *, padded: bool) -> list[np.ndarray]:
    """Indices of texts per batch: longest first, each batch's cost at most ``batch_tokens``.

    Args:
        lengths: ``(N,)`` token counts.
        batch_tokens: budget per batch; a single text longer than it still gets its own batch.
        padded: cost = ``batch × longest`` (padded execution) instead of the sum of lengths (packed).

    Returns:
        Index arrays into ``lengths`` that together cover every text once.
    """
    if batch_tokens <= 0:
        raise InputError(f"batch_tokens={batch_tokens} must be positive; try {DEFAULT_BATCH_TOKENS}")
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start, n = 0, len(order)
    if padded:
        while start < n:
            size = max(1, batch_tokens // max(1, int(lengths[order[start]])))  # the first is the longest
            batches.append(order[start:start + size])
            start += size
        return batches
    cumulative = np.cumsum(lengths[order])
    while start < n:
        before = cumulative[start - 1] if start else 0
        end = int(np.searchsorted(cumulative, before + batch_tokens, side="right"))
        end = max(end, start + 1)
        batches.append(order[start:end])
        start = end
    return batches


@dataclass
class Batch:
    """One batch: the input positions of its texts and the trunk's inputs.

    Attributes:
        index: ``(B,)`` positions in the input list.
        inputs: packed ``input_ids`` ``(T,)`` + ``cu_seqlens`` ``(B + 1,)``, or padded
            ``input_ids`` / ``attention_mask`` ``(B, S)``; ``token_type_ids`` for pairs.
        longest: tokens in the batch's longest text.
    """

    index: Tensor
    inputs: dict[str, Tensor]
    longest: int

    @property
    def packed(self) -> bool:
        return "cu_seqlens" in self.inputs


def as_text_list(texts: Any, what: str) -> tuple[list[Any], bool]:
    """``texts`` as a list, and whether a single item was given (result unwrapped)."""
    if isinstance(texts, (str, tuple, Mapping)):
        return [texts], True
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Iterable):
        raise InputError(f"{what} takes a string or a list of strings, got {type(texts).__name__}")
    return list(texts), False


def check_strings(texts: Sequence[Any], what: str, *, pairs: bool = False) -> list[Any]:
    """Strings (or, with ``pairs``, ``(text, text_pair)`` tuples / ``{"text", "text_pair"}`` dicts).

    Raises:
        InputError: naming the first bad item and what each item must be.
    """
    out: list[Any] = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            _check_encodable(t, what, i)
            out.append(t)
        elif pairs and isinstance(t, Mapping) and isinstance(t.get("text"), str):
            pair = t.get("text_pair")
            out.append(t["text"] if pair is None else (t["text"], pair))
        elif pairs and isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(s, str) for s in t):
            out.append((t[0], t[1]))
        else:
            kinds = "a string, a (text, text_pair) tuple or a {'text', 'text_pair'} dict" if pairs else "a string"
            raise InputError(f"{what}: item {i} is {type(t).__name__} {t!r:.60}; each item must be {kinds}")
    return out


def _check_encodable(text: str, what: str, index: int) -> None:
    """A lone surrogate (``"\\ud800"``, from a bad decode) cannot be tokenized: say which item holds it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what}: item {index} holds {text[exc.start:exc.end]!r} at character {exc.start}, "
                         "a lone surrogate that is not valid text; fix the decoding that produced it") from None


def show_progress(progress: bool | None, total_tokens: int) -> bool:
    """``progress`` if given; else a bar on long jobs when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and total_tokens >= PROGRESS_MIN_TOKENS


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (None = leave them)."""
    import torch

    if n is None:
        yield
        return
    if n <= 0:
        raise InputError(f"threads={n} must be a positive number of CPU threads")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["DEFAULT_BATCH_TOKENS", "PROGRESS_MIN_TOKENS", "Batch", "as_text_list", "check_strings",
           "plan_batches", "show_progress", "torch_threads"]

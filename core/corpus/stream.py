"""Embedding a stream of texts in bounded memory: ``bertzoo.embed_stream``.

``embed_stream(texts, model=..., chunk_size=...)`` takes any iterable of strings and yields
:class:`StreamChunk` objects in input order, ``chunk_size`` texts at a time; memory holds one
chunk, whatever the length of the stream. Within a chunk the pipeline's length-sorted
token-budget batching applies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from bertzoo.corpus.sources import check_encodable
from bertzoo.errors import InputError
from bertzoo.inference.truncation import TruncationTally, check_policy
from bertzoo.inference.vectors import check_output_options, check_precision, shape_vectors

DEFAULT_CHUNK_SIZE = 4096  # texts tokenized and batched together: bounded memory, good length sorting
# Hand free C-heap pages back to the OS after each chunk (glibc only). Activations of a new size
# every batch leave freed holes that glibc keeps; benchmarks/stream_memory.py measures the effect.
TRIM_HEAP = True
_malloc_trim: object = None  # None: not looked up yet; False: not glibc


def release_free_heap() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``); False where unavailable."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _malloc_trim = libc.malloc_trim
        except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without it)
            _malloc_trim = False
    if _malloc_trim is False:
        return False
    _malloc_trim(0)  # type: ignore[operator]
    return True


@dataclass
class StreamChunk:
    """Consecutive results of :func:`embed_stream`.

    Attributes:
        start: input index of the first text in the chunk.
        vectors: ``(n, D)`` in the requested precision (``(n, ceil(D / 8))`` uint8 for binary).
        tokens: ``(n,)`` int32 tokens of each whole text, special tokens included, before any cut.
        truncated: ``(n,)`` bool, the text was cut at the model's maximum length.
        scales: ``(n,)`` float32 per-vector scales for int8 (``x ≈ q * scale``); None otherwise.
    """

    start: int
    vectors: np.ndarray
    tokens: np.ndarray
    truncated: np.ndarray
    scales: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def rows(self) -> np.ndarray:
        """``(n,)`` int64 input indices of the chunk's texts."""
        return np.arange(self.start, self.start + len(self), dtype=np.int64)


@dataclass(frozen=True)
class StreamOptions:
    """What each text's stored vector depends on, besides the model (recorded in the manifest)."""

    truncate: str = "warn"
    normalize: bool | None = None
    dim: int | None = None
    precision: str = "float32"
    batch_tokens: int | None = None

    def check(self) -> None:
        """Raises InputError for an unknown truncation policy or precision."""
        check_policy(self.truncate)
        check_precision(self.precision)


def embed_chunk(pipe: Any, texts: list[str], start: int, options: StreamOptions, *,
                threads: int | None = None, where: str = "") -> StreamChunk:
    """Embed one chunk with ``pipe`` (a :class:`bertzoo.Pipeline`); ``warn`` is reported by the caller.

    Raises:
        NonFiniteVectorError: a vector holding NaN or Inf, naming its text (and ``where``, e.g. the shard).
    """
    policy = "silent" if options.truncate == "warn" else options.truncate
    fitted = pipe.encode_for_embedding(texts, policy, first_index=start)
    raw = pipe.embed_encoded(fitted, batch_tokens=options.batch_tokens, normalize=False, progress=False,
                             threads=threads)
    normalize = bool(pipe.embedding_normalize) if options.normalize is None else options.normalize
    shaped = shape_vectors(raw, normalize=normalize, dim=options.dim, precision=options.precision,
                           first_index=start, where=where)
    if TRIM_HEAP:
        release_free_heap()
    return StreamChunk(start, shaped.values, fitted.tokens.astype(np.int32), fitted.truncated.copy(), shaped.scales)


def embed_stream(
    texts: Iterable[str],
    model: str | os.PathLike[str] | None = None,
    *,
    head: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_tokens: int | None = None,
    compute: str | None = None,
    dtype: str | None = None,
    quantize: str | None = None,
    compile: bool = False,
    threads: int | None = None,
    device: str | None = None,
    normalize: bool | None = None,
    dim: int | None = None,
    precision: str = "float32",
    truncate: str = "warn",
) -> Iterator[StreamChunk]:
    """Embed an iterable of texts lazily, yielding :class:`StreamChunk` objects in input order.

    Reads ``chunk_size`` texts at a time from ``texts`` (a generator over a huge file is fine),
    so memory stays bounded by the chunk, not the stream. ``np.concatenate([c.vectors for c in
    embed_stream(texts)])`` equals ``bertzoo.embed(texts)`` to float rounding.

    Args:
        texts: strings, consumed lazily.
        model: as :func:`bertzoo.embed`; the pipeline is cached.
        head: a head serving the ``embed`` task; None = the checkpoint's, else the default.
        chunk_size: texts per chunk (tokenized and length-sorted together).
        compute: a registered compute precision (``dtype`` / ``quantize`` are its older spellings).
        normalize: L2-normalise (after the ``dim`` cut); None = as the model says.
        dim: keep the first ``dim`` components (Matryoshka-style), re-normalised.
        precision: ``"float32"``, ``"float16"``, ``"int8"`` (per-vector scales in ``scales``) or
            ``"binary"`` (sign bits packed with ``np.packbits``); see :mod:`bertzoo.inference.vectors`.
        truncate: ``"warn"`` (one :class:`~bertzoo.inference.truncation.TruncationWarning` at the
            end of the stream with the count), ``"silent"``, ``"error"`` or ``"chunk"``.

    Raises:
        InputError: a non-string item or one holding a lone surrogate, a bad option, or a long text
            under ``truncate="error"``.
        NonFiniteVectorError: a vector holding NaN or Inf (a corrupted model), naming its text.
    """
    from bertzoo.inference.pipeline import get_pipeline  # heavy: loaded when a stream starts

    if chunk_size < 1:
        raise InputError(f"chunk_size={chunk_size} must be at least 1")
    options = StreamOptions(truncate, normalize, dim, precision, batch_tokens)
    options.check()
    pipe = get_pipeline("embed", model, head=head, compute=compute, dtype=dtype, quantize=quantize, compile=compile,
                        device=device)
    check_output_options(pipe.dimension, dim, precision)
    counts = TruncationTally(truncate, pipe.max_length)
    iterator = iter(texts)
    start = 0
    while chunk := list(islice(iterator, chunk_size)):
        for i, t in enumerate(chunk):
            if not isinstance(t, str):
                raise InputError(f"embed_stream: item {start + i} is {type(t).__name__} {t!r:.60}; "
                                 "each item must be a string")
            check_encodable(t, f"embed_stream: item {start + i}")
        result = embed_chunk(pipe, chunk, start, options, threads=threads)
        counts.add(int(result.truncated.sum()), len(chunk))
        start += len(chunk)
        yield result
    counts.warn()  # one line for the whole stream, at the caller


__all__ = ["DEFAULT_CHUNK_SIZE", "StreamChunk", "StreamOptions", "embed_chunk", "embed_stream", "release_free_heap"]

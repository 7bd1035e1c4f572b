"""Output controls for embeddings: normalisation, Matryoshka-style dimension cut, storage precision.

``shape_vectors(vectors, normalize=..., dim=..., precision=...)`` turns the pooled ``(N, H)``
float32 vectors of :meth:`bertzoo.Pipeline.embed_encoded` into what is stored:

1. ``dim``: keep the first ``dim`` components (Matryoshka-style); the cut vector is then
   re-normalised when normalisation is on.
2. ``normalize``: L2-normalise (the model's own choice unless overridden).
3. ``precision``:

   - ``float32``: as computed.
   - ``float16``: half the bytes; IEEE half rounding.
   - ``int8``: symmetric per-vector scale, ``scale = max|x| / 127``, ``q = round(x / scale)``;
     ``x ≈ q * scale``. One float32 scale per vector is stored next to it (a per-dimension scale
     would need corpus statistics before the first vector is written, which a stream cannot have).
   - ``binary``: the sign bits (1 where ``x > 0``), packed 8 per byte with ``np.packbits``
     (big-endian bit order, last byte zero-padded): ``(N, ceil(dim / 8))`` uint8. Compare with
     Hamming distance, or unpack with :func:`restore_vectors`.

:func:`restore_vectors` maps each stored form back to float32 (±1 for binary) for scoring.
:data:`PRECISION_LAYOUTS` says, in one line per precision, how a stored vector reads.

A vector holding NaN or Inf is never stored: :func:`shape_vectors` checks every batch once
(before int8 scales or sign bits could hide it, and again after a float16 cast, which overflows
past ±65504) and raises :class:`NonFiniteVectorError` naming the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bertzoo.errors import BertzooError, InputError

if TYPE_CHECKING:
    from torch import Tensor

PRECISIONS = ("float32", "float16", "int8", "binary")
# numpy dtype of each stored precision
STORED_DTYPES: dict[str, str] = {"float32": "float32", "float16": "float16", "int8": "int8", "binary": "uint8"}
# how a stored vector reads (manifests and format notes quote it)
PRECISION_LAYOUTS: dict[str, str] = {
    "float32": "float32 vectors",
    "float16": "float16 vectors",
    "int8": "int8 vectors q with a symmetric per-vector scale (rows 'scale'): x ~= q * scale",
    "binary": "sign bits (1 where x > 0) packed 8 per byte by np.packbits, big-endian bit order",
}

FLOAT16_MAX = 65504.0


class NonFiniteVectorError(BertzooError):
    """An embedding holding NaN or Inf: it is neither returned nor written."""


def check_finite(vectors: Tensor | np.ndarray, *, first_index: int = 0, where: str = "") -> None:
    """Refuse ``(N, D)`` vectors holding NaN or Inf: one reduction per batch, indices only on failure.

    Args:
        first_index: input index of the first row, for the message.
        where: where the rows go, for the message (e.g. ``" (shard 3)"``).

    Raises:
        NonFiniteVectorError: naming the first bad text and how many there are.
    """
    if isinstance(vectors, np.ndarray):
        finite = np.isfinite(vectors).all(axis=-1)
    else:
        import torch

        if bool(torch.isfinite(vectors).all()):
            return
        finite = torch.isfinite(vectors).all(dim=-1).cpu().numpy()
    bad = np.flatnonzero(~finite)
    if not len(bad):
        return
    raise NonFiniteVectorError(
        f"the embedding of text {first_index + int(bad[0])}{where} holds NaN or Inf ({len(bad)} of {len(finite)} "
        "texts in its batch): the model's weights are probably corrupted (one NaN or Inf weight is enough) or its "
        "arithmetic overflowed; nothing was written for it. Load the model with bertzoo.from_pretrained (it names "
        "non-finite weights), re-download it, or compute in float32"
    )


def _check_float16_range(values: np.ndarray, first_index: int, where: str) -> None:
    over = np.flatnonzero(~np.isfinite(values).all(axis=-1))
    if len(over):
        raise NonFiniteVectorError(
            f"the embedding of text {first_index + int(over[0])}{where} exceeds float16's range (±{FLOAT16_MAX:g}) "
            f"({len(over)} of {len(values)} texts in its batch); store float32, or L2-normalise the vectors "
            "(normalize=True / --normalize)"
        )


@dataclass
class ShapedVectors:
    """Stored vectors and what is needed to read them back.

    Attributes:
        values: ``(N, D)`` float32 / float16 / int8, or ``(N, ceil(D / 8))`` uint8 for binary.
        scales: ``(N,)`` float32 per-vector scales for int8; None otherwise.
    """

    values: np.ndarray
    scales: np.ndarray | None = None


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        InputError: an unknown precision, naming the valid ones.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    return precision


def stored_width(width: int, precision: str) -> int:
    """Columns a ``width``-dim vector takes when stored (bytes of packed bits for binary)."""
    return -(-width // 8) if precision == "binary" else width


def check_output_options(dimension: int, dim: int | None, precision: str) -> int:
    """The output width, after checking ``dim`` and ``precision`` against the model's ``dimension``.

    Raises:
        InputError: ``dim`` outside ``1..dimension`` or an unknown precision.
    """
    check_precision(precision)
    if dim is None:
        return dimension
    if not 1 <= dim <= dimension:
        raise InputError(f"dim={dim} is out of range: the model gives {dimension}-dim vectors; pick 1..{dimension}")
    return int(dim)


def shape_vectors(vectors: Tensor, *, normalize: bool, dim: int | None = None, precision: str = "float32",
                  first_index: int = 0, where: str = "") -> ShapedVectors:
    """Cut, normalise and store ``vectors`` ``(N, H)`` float32 (unnormalised) as asked.

    ``first_index`` and ``where`` place the rows in the input for :class:`NonFiniteVectorError`.

    Raises:
        InputError: a bad ``dim`` or ``precision``.
        NonFiniteVectorError: a vector holding NaN or Inf, or one beyond float16's range.
    """
    import torch.nn.functional as F

    width = check_output_options(int(vectors.shape[-1]), dim, precision)
    check_finite(vectors, first_index=first_index, where=where)  # before int8 scales or sign bits hide it
    x = vectors[:, :width] if width != vectors.shape[-1] else vectors
    if normalize:
        x = F.normalize(x, p=2, dim=-1)
    array = x.detach().float().cpu().numpy()
    if precision == "float32":
        return ShapedVectors(np.ascontiguousarray(array, dtype=np.float32))
    if precision == "float16":
        with np.errstate(over="ignore"):  # an overflow is reported just below, naming the text
            half = array.astype(np.float16)
        _check_float16_range(half, first_index, where)
        return ShapedVectors(half)
    if precision == "binary":
        return ShapedVectors(np.packbits(array > 0, axis=-1))
    scales = np.abs(array).max(axis=-1) / 127.0 if len(array) else np.zeros(0, np.float32)
    safe = np.where(scales > 0, scales, 1.0)[:, None]  # a zero vector stays zero
    q = np.clip(np.rint(array / safe), -127, 127).astype(np.int8)
    return ShapedVectors(q, scales.astype(np.float32))


def restore_vectors(values: np.ndarray, precision: str, *, scales: np.ndarray | None = None,
                    dim: int | None = None) -> np.ndarray:
    """Float32 vectors from a stored form: ``q * scale`` for int8, ±1 per bit for binary.

    Args:
        values: what :func:`shape_vectors` stored.
        precision: the precision it was stored in.
        scales: ``(N,)`` for int8.
        dim: the vector width for binary (the packed bytes may hold padding bits).

    Raises:
        InputError: int8 without scales, or an unknown precision.
    """
    check_precision(precision)
    if precision in ("float32", "float16"):
        return values.astype(np.float32)
    if precision == "int8":
        if scales is None:
            raise InputError("int8 vectors need their per-vector scales to be restored; pass scales=")
        return values.astype(np.float32) * scales.astype(np.float32)[:, None]
    bits = np.unpackbits(values, axis=-1, count=dim)
    return bits.astype(np.float32) * 2.0 - 1.0


__all__ = ["FLOAT16_MAX", "PRECISIONS", "PRECISION_LAYOUTS", "STORED_DTYPES", "NonFiniteVectorError", "ShapedVectors",
           "check_finite", "check_output_options", "check_precision", "restore_vectors", "shape_vectors",
           "stored_width"]

"""Output controls for embeddings: normalisation, Matryoshka-style dimension cut, storage precision.

``shape_vectors(vectors, normalize=..., dim=..., precision=...)`` turns the pooled ``(N, H)``
float32 vectors of :meth:`bertzoo.runner.Pipeline.embed_encoded` into what is stored:

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bertzoo.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

PRECISIONS = ("float32", "float16", "int8", "binary")


@dataclass
class ShapedVectors:
    """Stored vectors and what is needed to read them back.

    Attributes:
        values: ``(N, D)`` float32 / float16 / int8, or ``(N, ceil(D / 8))`` uint8 for binary.
        scales: ``(N,)`` float32 per-vector scales for int8; None otherwise.
    """

    values: np.ndarray
    scales: np.ndarray | None = None


def check_output_options(dimension: int, dim: int | None, precision: str) -> int:
    """The output width, after checking ``dim`` and ``precision`` against the model's ``dimension``.

    Raises:
        InputError: ``dim`` outside ``1..dimension`` or an unknown precision.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if dim is None:
        return dimension
    if not 1 <= dim <= dimension:
        raise InputError(f"dim={dim} is out of range: the model gives {dimension}-dim vectors; pick 1..{dimension}")
    return int(dim)


def shape_vectors(vectors: Tensor, *, normalize: bool, dim: int | None = None, precision: str = "float32",
                  ) -> ShapedVectors:
    """Cut, normalise and store ``vectors`` ``(N, H)`` float32 (unnormalised) as asked.

    Raises:
        InputError: a bad ``dim`` or ``precision``.
    """
    import torch.nn.functional as F

    width = check_output_options(int(vectors.shape[-1]), dim, precision)
    x = vectors[:, :width] if width != vectors.shape[-1] else vectors
    if normalize:
        x = F.normalize(x, p=2, dim=-1)
    array = x.detach().float().cpu().numpy()
    if precision == "float32":
        return ShapedVectors(np.ascontiguousarray(array, dtype=np.float32))
    if precision == "float16":
        return ShapedVectors(array.astype(np.float16))
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
    if precision in ("float32", "float16"):
        return values.astype(np.float32)
    if precision == "int8":
        if scales is None:
            raise InputError("int8 vectors need their per-vector scales to be restored; pass scales=")
        return values.astype(np.float32) * scales.astype(np.float32)[:, None]
    if precision == "binary":
        bits = np.unpackbits(values, axis=-1, count=dim)
        return bits.astype(np.float32) * 2.0 - 1.0
    raise InputError(f"precision={precision!r} is unknown; use one of {', '.join(PRECISIONS)}")


__all__ = ["PRECISIONS", "ShapedVectors", "check_output_options", "restore_vectors", "shape_vectors"]

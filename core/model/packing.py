"""Packed execution: a padded batch's real tokens as ``(T, ...)`` rows described by ``cu_seqlens``.

A padded ``(B, S)`` batch whose real tokens form one contiguous run per row (right or left
padding) is packed into ``(T, ...)`` rows, ``T`` = real tokens. The host-side offsets are read
once per forward and kept in the packed :class:`~bertzoo.interfaces.AttentionMask`'s cache under
:data:`OFFSETS`, so no layer syncs again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bertzoo.interfaces import AttentionMask

OFFSETS = "bertzoo:offsets"  # mask.cache key: cu_seqlens as a Python list (host copy, made once per forward)


@dataclass
class Packing:
    """Where the real tokens of a batch sit once packed into ``(T, ...)`` rows.

    Attributes:
        batch, seq: the padded shape ``(B, S)`` (for a batch that was never padded, ``S`` is the
            longest sequence and :meth:`unpack` is not meaningful).
        keep: ``(T,)`` int64 flat indices into ``B * S`` of the real tokens, in order; None when
            every token is real (packing is then a free reshape).
        cu_seqlens: ``(B + 1,)`` int32 offsets of each sequence in ``T``, on the batch's device.
        offsets: the same offsets as a Python list (read from the device once).
        max_seqlen: the longest sequence.
    """

    batch: int
    seq: int
    keep: Tensor | None
    cu_seqlens: Tensor
    offsets: list[int]
    max_seqlen: int

    @property
    def total(self) -> int:
        return self.offsets[-1]

    def pack(self, x: Tensor) -> Tensor:
        """``(B, S, ...)`` → ``(T, ...)``: the real rows, in order."""
        flat = x.reshape(self.batch * self.seq, *x.shape[2:])
        return flat if self.keep is None else flat.index_select(0, self.keep)

    def unpack(self, x: Tensor) -> Tensor:
        """``(T, ...)`` → ``(B, S, ...)`` with zeros at padding (differentiable)."""
        if self.keep is None:
            return x.reshape(self.batch, self.seq, *x.shape[1:])
        out = x.new_zeros(self.batch * self.seq, *x.shape[1:]).index_copy(0, self.keep, x)
        return out.view(self.batch, self.seq, *x.shape[1:])

    def attention_mask(self, *, causal: bool = False) -> AttentionMask:
        """The packed self-attention description shared by every layer (offsets pre-cached)."""
        mask = AttentionMask(causal=causal, cu_seqlens=self.cu_seqlens, max_seqlen=self.max_seqlen)
        mask.cache[OFFSETS] = self.offsets
        return mask

    @classmethod
    def from_cu_seqlens(cls, cu_seqlens: Tensor) -> Packing:
        """Packing of an already packed batch (``keep`` None; ``seq`` = the longest sequence)."""
        offsets = [int(v) for v in cu_seqlens.tolist()]
        longest = max((b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)), default=0)
        return cls(len(offsets) - 1, longest, None, cu_seqlens.to(torch.int32), offsets, longest)


def packing_from_mask(attention_mask: Tensor | None, batch: int, seq: int, device: torch.device, *,
                      allow_holes: bool = False) -> Packing | None:
    """The :class:`Packing` of a padded batch, or None when a row's real tokens are not one
    contiguous run (a mask with holes) and ``allow_holes`` is False.

    Args:
        attention_mask: None (every token real) or a 2-D ``(B, S)`` mask, nonzero = real token.
        allow_holes: pack each row's real tokens in order even when padding sits between them.
            Exact for attention alone (a query sees the same real keys, in the same order, as
            under the padded mask); off by default because the trunk runs such masks padded.

    One host sync reads the lengths and the contiguity check together.
    """
    if attention_mask is None:
        lengths = [seq] * batch
        real = None
    else:
        real = (attention_mask if attention_mask.dtype == torch.bool else attention_mask != 0).to(device)  # (B, S)
        counts = real.sum(dim=-1)  # (B,)
        # number of runs of real tokens per row: rising edges, plus one if the row starts real
        runs = real.int().diff(dim=-1).clamp(min=0).sum(dim=-1) + real[:, 0].int()
        stats = torch.stack([counts, runs.to(counts.dtype)]).tolist()  # the one sync
        if not allow_holes and any(r > 1 for r in stats[1]):
            return None
        lengths = stats[0]
        if all(n == seq for n in lengths):
            real = None  # nothing to drop
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    cu = torch.tensor(offsets, dtype=torch.int32, device=device)
    keep = None if real is None else real.flatten().nonzero().squeeze(1)
    return Packing(batch, seq, keep, cu, offsets, max(lengths, default=0))

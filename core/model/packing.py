"""Packed execution: a padded batch's real tokens as ``(T, ...)`` rows described by ``cu_seqlens``.

A padded ``(B, S)`` batch whose real tokens form one contiguous run per row (right or left
padding) is packed into ``(T, ...)`` rows, ``T`` = real tokens. The host-side offsets are read
once per forward and kept in the packed :class:`~bertzoo.interfaces.AttentionMask`'s cache under
:data:`OFFSETS`, so no layer syncs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


# -- length buckets: several packed sequences per batched kernel call ------------------------------------
MIN_STEP = 8  # bucket widths are multiples of 8 tokens ...
STEPS_PER_OCTAVE = 8  # ... and above 64 tokens, 8 widths per doubling: padding <= 1/8 of a sequence


def bucket_width(n: int) -> int:
    """The padded width of a sequence of ``n`` tokens: ``n`` rounded up to its step (8 below 128,
    then 2^(bits - 4): at most 1/8 of ``n``). A function of ``n`` alone, so a sequence is computed
    the same way, bit for bit, whatever else is in its batch."""
    step = max(MIN_STEP, 2 ** (n.bit_length() - 1) // STEPS_PER_OCTAVE)
    return -(-n // step) * step


@dataclass
class Bucket:
    """Sequences of one :func:`bucket_width` ``L``, padded to it, for one batched attention call.

    Attributes:
        rows: ``(m, L)`` int64 packed-row index of every slot; a padding slot repeats its
            sequence's first row (any real row: padding keys are masked, padding queries dropped).
        real: ``(m, L)`` bool, True at real slots; None when every member has length ``L``.
        keep: ``(n,)`` int64 flat indices of the real slots in ``(m · L)`` (None with ``real``).
        start: when the members are consecutive in the pack and all of length ``L``, their first
            packed row: the bucket is then a view of ``m · L`` rows from there, no gather.
    """

    rows: Tensor
    real: Tensor | None
    keep: Tensor | None
    start: int | None = None

    @property
    def width(self) -> int:
        return int(self.rows.shape[1])


@dataclass
class BucketPlan:
    """How to run a packed batch as a few padded buckets.

    Attributes:
        buckets: the buckets, longest first.
        order: ``(T,)`` int64: packed row ``t``'s row in the buckets' concatenated real outputs;
            None when that concatenation is already in packed order.
        cache: per-forward conversions (the buckets' attention masks), shared by the layers.
    """

    buckets: list[Bucket]
    order: Tensor | None
    cache: dict[Any, Any] = field(default_factory=dict)


def bucket_groups(lengths: list[int]) -> list[tuple[int, list[int]]]:
    """``(width, sequence indices)`` per bucket, widest first: the sequences of one
    :func:`bucket_width`, in packed order. Sequences of length 0 are left out."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        if n > 0:
            groups.setdefault(bucket_width(n), []).append(i)
    return sorted(groups.items(), reverse=True)


def bucket_plan(offsets: list[int], device: torch.device) -> BucketPlan:
    """The :class:`BucketPlan` of a packed batch with ``cu_seqlens`` = ``offsets`` (see :func:`bucket_groups`)."""
    lengths = [b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    buckets: list[Bucket] = []
    sources: list[Tensor] = []  # packed rows of each bucket's real outputs, in output order
    for width, members in bucket_groups(lengths):
        starts = torch.tensor([offsets[i] for i in members], dtype=torch.long)
        sizes = torch.tensor([lengths[i] for i in members], dtype=torch.long)
        slot = torch.arange(width)
        real = slot[None, :] < sizes[:, None]  # (m, L)
        rows = starts[:, None] + torch.where(real, slot[None, :], 0)  # (m, L): padding repeats row 0
        full = bool(real.all())
        keep = None if full else real.flatten().nonzero().squeeze(1)
        sources.append(rows.flatten() if keep is None else rows.flatten()[keep])
        consecutive = full and members == list(range(members[0], members[0] + len(members)))
        buckets.append(Bucket(rows.to(device), None if full else real.to(device),
                              None if keep is None else keep.to(device),
                              offsets[members[0]] if consecutive else None))
    source = torch.cat(sources) if sources else torch.zeros(0, dtype=torch.long)
    total = offsets[-1]
    identity = source.numel() == total and bool((source == torch.arange(total)).all())
    order = None
    if not identity:
        order = torch.empty(total, dtype=torch.long)
        order[source] = torch.arange(source.numel())
        order = order.to(device)
    return BucketPlan(buckets, order)

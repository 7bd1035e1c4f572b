"""Which rows go into which micro-batch, and how a micro-batch becomes tensors.

The plan of an epoch is a pure function of ``(seed, epoch)`` and the data, so every process
computes the same plan and a resumed run continues at the same batch: the data position is just
``(epoch, batch index)``. Each global micro-batch is shared between processes by rows
(``rows[rank::world]``), so 2 processes see exactly the rows 1 process would.

Packed tensors (``cu_seqlens``, no padding anywhere) are used when the trunk runs packed; else
rows are padded to the longest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def epoch_plan(lengths: Sequence[int], *, epoch: int, seed: int, batch_size: int,
               batch_tokens: int | None, shuffle: bool = True) -> list[list[int]]:
    """Micro-batches of row indices for one epoch.

    ``batch_tokens`` None: ``batch_size`` rows each. Else rows are added while the batch's real
    tokens stay within ``batch_tokens`` (a row longer than the budget gets a batch of its own).
    Shuffled by a generator seeded with ``seed + epoch`` (independent of the global RNG).
    """
    n = len(lengths)
    if shuffle:
        gen = torch.Generator().manual_seed(int(seed) + int(epoch))
        order = torch.randperm(n, generator=gen).tolist()
    else:
        order = list(range(n))
    if batch_tokens is None:
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > batch_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches


def shard(rows: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's share of a global micro-batch."""
    return list(rows[rank::world])


@dataclass
class Inputs:
    """Trunk inputs of one side of a micro-batch: packed (``cu_seqlens``) or padded (``attention_mask``)."""

    input_ids: Tensor
    token_type_ids: Tensor | None = None
    cu_seqlens: Tensor | None = None
    attention_mask: Tensor | None = None
    max_seqlen: int = 0

    @property
    def packed(self) -> bool:
        return self.cu_seqlens is not None

    def to(self, device: torch.device) -> Inputs:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Inputs(move(self.input_ids), move(self.token_type_ids), move(self.cu_seqlens),  # type: ignore[arg-type]
                      move(self.attention_mask), self.max_seqlen)


def make_inputs(ids: Sequence[Sequence[int]], type_ids: Sequence[Sequence[int]] | None, *, packed: bool,
                pad_id: int) -> Inputs:
    """Packed ``(T,)`` tensors with ``cu_seqlens``, or ``(B, S)`` tensors padded on the right."""
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
    longest = int(lengths.max()) if len(ids) else 0
    flat = torch.tensor([t for row in ids for t in row], dtype=torch.int64)
    flat_types = torch.tensor([t for row in type_ids for t in row], dtype=torch.int64) if type_ids is not None else None
    if packed:
        cu = torch.zeros(len(ids) + 1, dtype=torch.int32)
        cu[1:] = torch.cumsum(lengths, 0)
        return Inputs(flat, flat_types, cu_seqlens=cu, max_seqlen=longest)
    mask = torch.arange(longest)[None, :] < lengths[:, None]  # (B, S)
    input_ids = torch.full((len(ids), longest), pad_id, dtype=torch.int64)
    input_ids[mask] = flat
    types = None
    if flat_types is not None:
        types = torch.zeros_like(input_ids)
        types[mask] = flat_types
    return Inputs(input_ids, types, attention_mask=mask.long(), max_seqlen=longest)


def flat_labels(labels: Sequence[Sequence[int]], *, packed: bool, fill: int) -> Tensor:
    """Per-token labels laid out like the inputs: ``(T,)`` packed, ``(B, S)`` padded with ``fill``."""
    if packed:
        return torch.tensor([t for row in labels for t in row], dtype=torch.int64)
    longest = max(len(row) for row in labels)
    return torch.tensor([list(row) + [fill] * (longest - len(row)) for row in labels], dtype=torch.int64)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Every tensor (and :class:`Inputs`) of ``batch`` on ``device``."""
    return {k: (v.to(device) if isinstance(v, (Tensor, Inputs)) else v) for k, v in batch.items()}


__all__ = ["Inputs", "epoch_plan", "flat_labels", "make_inputs", "shard", "to_device"]

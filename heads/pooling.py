"""The one pooling: last hidden states → one vector per sequence, padded or packed.

sentence-transformers' ``Pooling`` arithmetic, used by the sentence-embedding head, the main
job's embed task and the built-in poolers (``mean``, ``cls``, ``max``):

- ``mean``: sum of the real tokens / their count (count floored at 1e-9);
- ``mean_sqrt_len_tokens``: the same sum / sqrt(count);
- ``cls``: the first real token (left padding included, as sentence-transformers does);
- ``max``: per channel over the real tokens (padding filled with ``-inf``, so a row with no
  real token gives ``-inf``).

Sums accumulate in float32 when the states are half precision. The result has ``dtype``
(default: the states' dtype, as sentence-transformers returns it); the main job asks for
float32 to keep the accumulation's precision.

Layouts: padded ``hidden (B, S, H)`` with an optional ``attention_mask (B, S)`` (1 = real token;
None = every token is real), or packed ``hidden (T, H)`` real tokens only, with ``cu_seqlens
(B + 1,)``: sequence ``i`` is ``hidden[cu_seqlens[i]:cu_seqlens[i + 1]]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bertzoo.errors import InputError

POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "mean_sqrt_len_tokens")


def pool(
    hidden: Tensor,
    mode: str,
    *,
    attention_mask: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Pool ``hidden`` over each sequence's real tokens → ``(B, H)`` in ``dtype`` (default ``hidden.dtype``).

    Raises:
        InputError: an unknown mode, states of the wrong rank, a mask or ``cu_seqlens`` that does
            not fit them, or both layouts at once.
    """
    if mode not in POOLING_MODES:
        raise InputError(f"pooling mode {mode!r} is unknown; use one of {', '.join(POOLING_MODES)}")
    out_dtype = hidden.dtype if dtype is None else dtype
    # sentence-transformers' rule: half-precision sums in float32, other dtypes in their own
    acc = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
    if cu_seqlens is not None:
        if attention_mask is not None:
            raise InputError("pool: give attention_mask (padded states) or cu_seqlens (packed states), not both")
        return _pool_packed(hidden, mode, cu_seqlens, acc).to(out_dtype)
    return _pool_padded(hidden, mode, attention_mask, acc).to(out_dtype)


def _pool_padded(hidden: Tensor, mode: str, attention_mask: Tensor | None, acc: torch.dtype) -> Tensor:
    if hidden.dim() != 3:
        raise InputError(
            f"pool: padded states must be (batch, seq, hidden), got shape {tuple(hidden.shape)}; "
            "packed (tokens, hidden) states need cu_seqlens"
        )
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:-1], dtype=torch.long, device=hidden.device)
    elif tuple(attention_mask.shape) != tuple(hidden.shape[:-1]):
        raise InputError(
            f"pool: attention_mask has shape {tuple(attention_mask.shape)} but the states are "
            f"{tuple(hidden.shape)}; the mask needs one entry per token (batch, seq)"
        )
    if mode == "cls":
        first = attention_mask.to(torch.int).argmax(dim=1)  # (B,) first real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first.to(hidden.device)]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, S, 1)
    if mode == "max":
        # -inf fill as sentence-transformers; a row without real tokens gives zeros, not -inf
        values = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
        return values.masked_fill(mask.sum(dim=1) == 0, 0.0)
    total = (hidden * mask).sum(dim=1, dtype=acc)  # (B, H)
    count = torch.clamp(mask.sum(dim=1, dtype=acc), min=1e-9)  # (B, 1)
    return total / (count if mode == "mean" else torch.sqrt(count))


def _pool_packed(hidden: Tensor, mode: str, cu_seqlens: Tensor, acc: torch.dtype) -> Tensor:
    if hidden.dim() != 2:
        raise InputError(
            f"pool: packed states must be (tokens, hidden), got shape {tuple(hidden.shape)}; "
            "padded (batch, seq, hidden) states take attention_mask, not cu_seqlens"
        )
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2 or cu_seqlens.dtype.is_floating_point:
        raise InputError(
            f"pool: cu_seqlens must be (batch + 1,) integer offsets, got shape {tuple(cu_seqlens.shape)} "
            f"dtype {cu_seqlens.dtype}"
        )
    cu = cu_seqlens.to(device=hidden.device, dtype=torch.long)
    if int(cu[-1]) != hidden.shape[0]:
        raise InputError(
            f"pool: cu_seqlens ends at {int(cu[-1])} but the packed states hold {hidden.shape[0]} tokens; "
            "the last offset must equal the token count"
        )
    lengths = cu.diff()  # (B,)
    if mode == "cls":
        return hidden[cu[:-1]]
    if mode == "max":
        values = torch.segment_reduce(hidden.to(acc), "max", lengths=lengths, axis=0)
        return values.masked_fill((lengths == 0)[:, None], 0.0)  # an empty sequence gives zeros
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=hidden.device), lengths,
                                      output_size=hidden.shape[0])  # (T,) sequence of each token
    total = hidden.new_zeros((len(lengths), hidden.shape[1]), dtype=acc).index_add_(0, segment, hidden.to(acc))
    count = lengths.to(acc).clamp(min=1e-9)[:, None]  # (B, 1)
    return total / (count if mode == "mean" else count.sqrt())
